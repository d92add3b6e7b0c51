// Shared by the experiment custom ops (fused_epilogue.c, sparse_conv.c):
// input access, errors, the band pixels' computed taps and the custom-op
// boilerplate. Header-only: each op library is built from one C file.
#ifndef ADPC_CUSTOM_OP_H
#define ADPC_CUSTOM_OP_H

#include <stdlib.h>

#include "onnxruntime_c_api.h"

static const OrtApi *api;

static OrtStatus *fail(const char *msg) { return api->CreateStatus(ORT_INVALID_ARGUMENT, msg); }

// input returns the shape of input i (at most 4 dimensions) and its data.
static OrtStatus *input(OrtKernelContext *ctx, size_t i, int64_t dims[4], size_t *nd, void **data) {
  const OrtValue *v;
  OrtTensorTypeAndShapeInfo *info;
  OrtStatus *st;
  if ((st = api->KernelContext_GetInput(ctx, i, &v))) return st;
  if ((st = api->GetTensorTypeAndShape(v, &info))) return st;
  st = api->GetDimensionsCount(info, nd);
  if (!st && *nd > 4) st = fail("adpc op: an input has more than 4 dimensions");
  if (!st) st = api->GetDimensions(info, dims, *nd);
  api->ReleaseTensorTypeAndShapeInfo(info);
  if (st) return st;
  return api->GetTensorMutableData((OrtValue *)v, data);
}

// BandTable: the band pixels with at least one computed tap, each with its
// computed taps (CSR: start[b] .. start[b+1] into tap_pix / tap_w) and their
// weight sum. The fill there is shift * (1 - wsum) + sum tap_w * BN(y)[tap_pix].
typedef struct {
  int nb;
  int *band, *start, *tap_pix;
  float *tap_w, *wsum;
} BandTable;

static void band_table_free(BandTable *t) {
  free(t->band);
  free(t->start);
  free(t->tap_pix);
  free(t->tap_w);
  free(t->wsum);
}

// band_table builds t from the runtime's band list (B pixels, -1 padded),
// the cut RBF support (K taps (dy, dx) and weights) and the mask: B * K mask
// reads, once for all channels. On error t is freed.
static OrtStatus *band_table(BandTable *t, const int64_t *band_in, int64_t B, const int64_t *taps,
                             const float *tw, int64_t K, const float *mask, int64_t H, int64_t W) {
  t->nb = 0;
  t->band = malloc(sizeof(int) * (size_t)(B + 1));
  t->start = malloc(sizeof(int) * (size_t)(B + 2));
  t->tap_pix = malloc(sizeof(int) * (size_t)(B * K + 1));
  t->tap_w = malloc(sizeof(float) * (size_t)(B * K + 1));
  t->wsum = malloc(sizeof(float) * (size_t)(B + 1));
  if (!t->band || !t->start || !t->tap_pix || !t->tap_w || !t->wsum) {
    band_table_free(t);
    return api->CreateStatus(ORT_FAIL, "adpc op: out of memory");
  }
  int nt = 0;
  t->start[0] = 0;
  for (int64_t b = 0; b < B; b++) {
    int64_t p = band_in[b];
    if (p < 0) continue;
    if (p >= H * W) {
      band_table_free(t);
      return fail("adpc op: band pixel outside the map");
    }
    int before = nt;
    float sum = 0.f;
    for (int64_t k = 0; k < K; k++) {
      int64_t yy = p / W + taps[2 * k], xx = p % W + taps[2 * k + 1];
      if (yy < 0 || yy >= H || xx < 0 || xx >= W || mask[yy * W + xx] == 0.f) continue;
      t->tap_pix[nt] = (int)(yy * W + xx);
      t->tap_w[nt++] = tw[k];
      sum += tw[k];
    }
    if (nt > before) {
      t->band[t->nb] = (int)p;
      t->wsum[t->nb] = sum;
      t->start[++t->nb] = nt;
    }
  }
  return NULL;
}

static const char *cpu_provider(const OrtCustomOp *op) { (void)op; return "CPUExecutionProvider"; }
static ONNXTensorElementDataType float_output(const OrtCustomOp *op, size_t i) {
  (void)op, (void)i;
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}
static size_t one_output(const OrtCustomOp *op) { (void)op; return 1; }
static OrtCustomOpInputOutputCharacteristic required(const OrtCustomOp *op, size_t i) {
  (void)op, (void)i;
  return INPUT_OUTPUT_REQUIRED;
}
static OrtMemType default_memory(const OrtCustomOp *op, size_t i) { (void)op, (void)i; return OrtMemTypeDefault; }
static int one(const OrtCustomOp *op) { (void)op; return 1; }

// describe_op sets what every op here shares: version 16 (CreateKernelV2 /
// KernelComputeV2, errors as statuses; the fields of later versions stay
// NULL, which ONNX Runtime 1.24 accepts at that version), CPU, one float
// output, required inputs in default memory.
static void describe_op(OrtCustomOp *op) {
  op->version = 16;
  op->GetExecutionProviderType = cpu_provider;
  op->GetOutputType = float_output;
  op->GetOutputTypeCount = one_output;
  op->GetInputCharacteristic = required;
  op->GetOutputCharacteristic = required;
  op->GetInputMemoryType = default_memory;
  op->GetVariadicInputMinArity = one;
  op->GetVariadicInputHomogeneity = one;
  op->GetVariadicOutputMinArity = one;
  op->GetVariadicOutputHomogeneity = one;
}

// register_ops adds ops to a new "adpc" domain on the session options.
static OrtStatus *register_ops(OrtSessionOptions *options, const OrtApiBase *base, OrtCustomOp **ops, int n) {
  api = base->GetApi(ORT_API_VERSION);
  if (!api) return NULL;  // an older library: nothing registered, sessions then refuse the graphs' adpc ops
  OrtCustomOpDomain *domain;
  OrtStatus *st;
  if ((st = api->CreateCustomOpDomain("adpc", &domain))) return st;
  for (int i = 0; i < n; i++)
    if ((st = api->CustomOpDomain_Add(domain, ops[i]))) return st;
  return api->AddCustomOpDomain(options, domain);
}

#endif
