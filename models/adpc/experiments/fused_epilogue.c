// Experiment (docs/sparse.md, "What would close the gap"): the exact epilogue
// of a masked convolution computed densely, as one ONNX Runtime custom op
// (domain "adpc"), in place of the Where / fill / Add / Relu nodes that
// models/adpc/onnx_sparse.py emits for it. Not part of any bundle.
//
// MaskedEpilogue(y, mask, band, shift, taps, weights) and
// MaskedEpilogueRes(..., residual), attribute relu (0 or 1):
//   y        float [1, C, H, W]  BN(conv(x)), BatchNorm folded by ORT
//   mask     float [>= H*W]      1 at the computed pixels (the sparse graph's mask_flat)
//   band     int64 [B]           frozen pixels near a computed one (the `band:S` input), -1 padded
//   shift    float [C]           the BN shift
//   taps     int64 [K, 2]        the cut RBF support (dy, dx), rbf_support
//   weights  float [K]           their weights
//   residual float [1, C, H, W]
// out = y at computed pixels; shift + sum_k w_k m_k (y_k - shift) at band
// pixels (the reference's BN(fill(y * m))); shift elsewhere; then + residual,
// then ReLU. One pass per channel plane plus the band pixels, channels in
// parallel on the session's intra-op pool.
//
// Build: gcc -O3 -march=native -fPIC -shared -I<dir of onnxruntime_c_api.h>
//        fused_epilogue.c -o libfused_epilogue.so
// (the header ships with the onnxruntime_go module: $(go env GOMODCACHE)/github.com/yalue/onnxruntime_go@v1.27.0).
#include "custom_op.h"

typedef struct {
  int64_t relu;
  int residual;
} Kernel;

// One call's work: the band table and the per-channel planes.
typedef struct {
  const float *y, *mask, *shift, *res;
  float *out;
  int64_t hw;
  int relu;
  const BandTable *bt;
} Job;

static void run_channel(void *ud, size_t c) {
  const Job *j = ud;
  const float *y = j->y + c * j->hw, *m = j->mask, *res = j->res ? j->res + c * j->hw : NULL;
  float *o = j->out + c * j->hw, s = j->shift[c];
  int64_t hw = j->hw;
  if (res && j->relu) {
    for (int64_t p = 0; p < hw; p++) {
      float v = (m[p] != 0.f ? y[p] : s) + res[p];
      o[p] = v > 0.f ? v : 0.f;
    }
  } else if (res) {
    for (int64_t p = 0; p < hw; p++) o[p] = (m[p] != 0.f ? y[p] : s) + res[p];
  } else if (j->relu) {
    for (int64_t p = 0; p < hw; p++) {
      float v = m[p] != 0.f ? y[p] : s;
      o[p] = v > 0.f ? v : 0.f;
    }
  } else {
    for (int64_t p = 0; p < hw; p++) o[p] = m[p] != 0.f ? y[p] : s;
  }
  const BandTable *t = j->bt;
  for (int b = 0; b < t->nb; b++) {
    int p = t->band[b];
    float v = s * (1.f - t->wsum[b]);
    for (int k = t->start[b]; k < t->start[b + 1]; k++) v += t->tap_w[k] * y[t->tap_pix[k]];
    if (res) v += res[p];
    if (j->relu && v < 0.f) v = 0.f;
    o[p] = v;
  }
}

static OrtStatus *compute(void *kp, OrtKernelContext *ctx) {
  const Kernel *k = kp;
  int64_t ys[4], ms[4], bs[4], ss[4], ts[4], ws[4], rs[4];
  size_t yn, mn, bn, sn, tn, wn, rn;
  float *y, *mask, *shift, *tw, *res = NULL;
  int64_t *band_in, *taps;
  OrtStatus *st;
  if ((st = input(ctx, 0, ys, &yn, (void **)&y)) || (st = input(ctx, 1, ms, &mn, (void **)&mask)) ||
      (st = input(ctx, 2, bs, &bn, (void **)&band_in)) || (st = input(ctx, 3, ss, &sn, (void **)&shift)) ||
      (st = input(ctx, 4, ts, &tn, (void **)&taps)) || (st = input(ctx, 5, ws, &wn, (void **)&tw)))
    return st;
  if (k->residual && (st = input(ctx, 6, rs, &rn, (void **)&res))) return st;
  if (yn != 4 || ys[0] != 1) return fail("adpc epilogue: y must be [1, C, H, W]");
  int64_t C = ys[1], H = ys[2], W = ys[3], hw = H * W;
  if (mn != 1 || ms[0] < hw) return fail("adpc epilogue: mask must be [>= H*W]");
  if (bn != 1) return fail("adpc epilogue: band must be [B]");
  if (sn != 1 || ss[0] != C) return fail("adpc epilogue: shift must be [C]");
  if (tn != 2 || ts[1] != 2 || wn != 1 || ws[0] != ts[0]) return fail("adpc epilogue: taps [K, 2] and weights [K]");
  if (res && (rn != 4 || rs[1] != C || rs[2] != H || rs[3] != W)) return fail("adpc epilogue: residual must match y");
  OrtValue *ov;
  float *out;
  if ((st = api->KernelContext_GetOutput(ctx, 0, ys, 4, &ov))) return st;
  if ((st = api->GetTensorMutableData(ov, (void **)&out))) return st;
  BandTable bt;
  if ((st = band_table(&bt, band_in, bs[0], taps, tw, ts[0], mask, H, W))) return st;
  Job j = {y, mask, shift, res, out, hw, (int)k->relu, &bt};
  st = api->KernelContext_ParallelFor(ctx, run_channel, (size_t)C, 0, &j);
  band_table_free(&bt);
  return st;
}

static OrtStatus *create(const OrtKernelInfo *info, int residual, void **kernel) {
  Kernel *k = calloc(1, sizeof *k);
  if (!k) return api->CreateStatus(ORT_FAIL, "adpc epilogue: out of memory");
  k->residual = residual;
  OrtStatus *st = api->KernelInfoGetAttribute_int64(info, "relu", &k->relu);
  if (st) {  // absent: no ReLU
    api->ReleaseStatus(st);
    k->relu = 0;
  }
  *kernel = k;
  return NULL;
}

static OrtStatus *create_plain(const OrtCustomOp *op, const OrtApi *a, const OrtKernelInfo *info, void **kernel) {
  (void)op, (void)a;
  return create(info, 0, kernel);
}
static OrtStatus *create_res(const OrtCustomOp *op, const OrtApi *a, const OrtKernelInfo *info, void **kernel) {
  (void)op, (void)a;
  return create(info, 1, kernel);
}
static void destroy(void *k) { free(k); }
static const char *name_plain(const OrtCustomOp *op) { (void)op; return "MaskedEpilogue"; }
static const char *name_res(const OrtCustomOp *op) { (void)op; return "MaskedEpilogueRes"; }
static ONNXTensorElementDataType input_type(const OrtCustomOp *op, size_t i) {
  (void)op;
  return i == 2 || i == 4 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}
static size_t inputs_plain(const OrtCustomOp *op) { (void)op; return 6; }
static size_t inputs_res(const OrtCustomOp *op) { (void)op; return 7; }

static OrtCustomOp op_plain, op_res;

static void describe(OrtCustomOp *op, int residual) {
  describe_op(op);
  op->CreateKernelV2 = residual ? create_res : create_plain;
  op->KernelComputeV2 = compute;
  op->KernelDestroy = destroy;
  op->GetName = residual ? name_res : name_plain;
  op->GetInputType = input_type;
  op->GetInputTypeCount = residual ? inputs_res : inputs_plain;
}

// RegisterCustomOps is what OrtApi::RegisterCustomOpsLibrary_V2 calls.
OrtStatus *RegisterCustomOps(OrtSessionOptions *options, const OrtApiBase *base) {
  describe(&op_plain, 0);
  describe(&op_res, 1);
  OrtCustomOp *ops[] = {&op_plain, &op_res};
  return register_ops(options, base, ops, 2);
}
