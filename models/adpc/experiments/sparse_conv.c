// Experiment (docs/sparse.md, "What would close the gap"): one masked 3x3
// convolution (stride 1, padding 1) computed at the computed pixels only,
// with its exact epilogue, channels-last, as an ONNX Runtime custom op
// (domain "adpc", AVX-512). Not part of any bundle.
//
// MaskedConv3x3Rows(x, weights, shift, index, mask, band, taps, tap_weights),
// attributes relu (0 or 1) and channels (Co):
//   x           float [1, H, W, Ci]  channels-last map
//   weights     float [9*Ci, CoP]    tap-major (ky, kx, ci) rows, BN scale folded, Co zero-padded to CoP:
//                                    16 or 32, else a multiple of 48
//   shift       float [CoP]          the BN shift (conv bias folded)
//   index       int64 [N]            the computed pixels (-1 padding skipped)
//   mask        float [>= H*W]       1 at the computed pixels
//   band        int64 [B]            frozen pixels near a computed one, -1 padded
//   taps        int64 [K, 2], tap_weights float [K]: the cut RBF support
// out [1, H, W, Co]: computed pixels BN(conv(x)); band pixels
// shift + sum_k w_k m_k (BN(conv)_k - shift); others shift; then ReLU.
// The convolution is register-blocked: 8 computed pixels x 16*V output
// channels (V <= 3) of accumulators, one broadcast of an input value per
// pixel and input channel and tap, the weights read once per block.
//
// Build: gcc -O3 -march=native -fPIC -shared -I<dir of onnxruntime_c_api.h> sparse_conv.c
#include <immintrin.h>

#include "custom_op.h"

#define PIXELS 8       // computed pixels per register block
#define CHUNK 64       // computed pixels per parallel task
#define ROWS 1024      // pixels per parallel task of the epilogue
#define MAX_VECTORS 3  // 16-float vectors of output channels per block

static const float zero_row[4096];  // what taps outside the image read (Ci <= 4096)

typedef struct {
  int64_t relu, channels;
} Kernel;

typedef struct {
  const float *x, *w, *shift, *mask;
  const int64_t *index;
  float *out, *fill;
  int64_t ci, cop, co, H, W, n;
  int relu;
  const BandTable *bt;
} Job;

static inline __attribute__((always_inline)) void conv_block(const Job *j, int64_t q0, int np, int V) {
  const float *src[PIXELS][9];
  int64_t pix[PIXELS];
  for (int u = 0; u < PIXELS; u++) {
    int64_t p = u < np ? j->index[q0 + u] : -1;
    pix[u] = p;
    for (int t = 0; t < 9; t++) {
      int64_t yy = p / j->W + t / 3 - 1, xx = p % j->W + t % 3 - 1;
      src[u][t] = p < 0 || yy < 0 || yy >= j->H || xx < 0 || xx >= j->W ? zero_row : j->x + (yy * j->W + xx) * j->ci;
    }
  }
  for (int64_t o0 = 0; o0 < j->cop; o0 += 16 * V) {
    __m512 acc[PIXELS][MAX_VECTORS];
    for (int v = 0; v < V; v++) {
      __m512 b = _mm512_loadu_ps(j->shift + o0 + 16 * v);
      for (int u = 0; u < PIXELS; u++) acc[u][v] = b;
    }
    for (int t = 0; t < 9; t++) {
      const float *wt = j->w + (size_t)(t * j->ci) * j->cop + o0;
      const float *row[PIXELS];  // this tap's input rows, in registers for the channel loop
      for (int u = 0; u < PIXELS; u++) row[u] = src[u][t];
      for (int64_t c = 0; c < j->ci; c++) {
        __m512 w[MAX_VECTORS];
        for (int v = 0; v < V; v++) w[v] = _mm512_loadu_ps(wt + c * j->cop + 16 * v);
        for (int u = 0; u < PIXELS; u++) {
          __m512 xv = _mm512_set1_ps(row[u][c]);
          for (int v = 0; v < V; v++) acc[u][v] = _mm512_fmadd_ps(xv, w[v], acc[u][v]);
        }
      }
    }
    float block[PIXELS][16 * MAX_VECTORS] __attribute__((aligned(64)));
    for (int u = 0; u < PIXELS; u++)
      for (int v = 0; v < V; v++) _mm512_store_ps(block[u] + 16 * v, acc[u][v]);
    int64_t width = j->co - o0 < 16 * V ? j->co - o0 : 16 * V;
    for (int u = 0; u < np; u++)
      if (pix[u] >= 0)
        for (int64_t o = 0; o < width; o++) j->out[pix[u] * j->co + o0 + o] = block[u][o];
  }
}

static void conv_task(void *ud, size_t task) {
  const Job *j = ud;
  int64_t lo = (int64_t)task * CHUNK, hi = lo + CHUNK < j->n ? lo + CHUNK : j->n;
  int V = j->cop <= 32 ? (int)(j->cop / 16) : MAX_VECTORS;
  for (int64_t q = lo; q < hi; q += PIXELS) {
    int np = hi - q < PIXELS ? (int)(hi - q) : PIXELS;
    if (V == 1) conv_block(j, q, np, 1);
    else if (V == 2) conv_block(j, q, np, 2);
    else conv_block(j, q, np, 3);
  }
}

// The fill of band pixel b from the computed rows (before any is overwritten).
static void fill_task(void *ud, size_t b) {
  const Job *j = ud;
  const BandTable *bt = j->bt;
  float *f = j->fill + b * j->co;
  for (int64_t c = 0; c < j->co; c++) f[c] = j->shift[c] * (1.f - bt->wsum[b]);
  for (int k = bt->start[b]; k < bt->start[b + 1]; k++) {
    const float *row = j->out + (int64_t)bt->tap_pix[k] * j->co;
    for (int64_t c = 0; c < j->co; c++) f[c] += bt->tap_w[k] * row[c];
  }
}

// Frozen pixels take the shift, then every pixel its ReLU.
static void rows_task(void *ud, size_t task) {
  const Job *j = ud;
  int64_t hw = j->H * j->W, lo = (int64_t)task * ROWS, hi = lo + ROWS < hw ? lo + ROWS : hw;
  for (int64_t p = lo; p < hi; p++) {
    float *o = j->out + p * j->co;
    if (j->mask[p] == 0.f)
      for (int64_t c = 0; c < j->co; c++) o[c] = j->shift[c];
    if (j->relu)
      for (int64_t c = 0; c < j->co; c++) o[c] = o[c] > 0.f ? o[c] : 0.f;
  }
}

static OrtStatus *compute(void *kp, OrtKernelContext *ctx) {
  const Kernel *k = kp;
  int64_t xs[4], ws[4], ss[4], is[4], ms[4], bs[4], ts[4], tws[4];
  size_t xn, wn, sn, in, mn, bn, tn, twn;
  float *x, *w, *shift, *mask, *tw;
  int64_t *index, *band_in, *taps;
  OrtStatus *st;
  if ((st = input(ctx, 0, xs, &xn, (void **)&x)) || (st = input(ctx, 1, ws, &wn, (void **)&w)) ||
      (st = input(ctx, 2, ss, &sn, (void **)&shift)) || (st = input(ctx, 3, is, &in, (void **)&index)) ||
      (st = input(ctx, 4, ms, &mn, (void **)&mask)) || (st = input(ctx, 5, bs, &bn, (void **)&band_in)) ||
      (st = input(ctx, 6, ts, &tn, (void **)&taps)) || (st = input(ctx, 7, tws, &twn, (void **)&tw)))
    return st;
  if (xn != 4 || xs[0] != 1 || xs[3] > 4096) return fail("adpc sparse conv: x must be [1, H, W, Ci], Ci <= 4096");
  int64_t H = xs[1], W = xs[2], ci = xs[3], hw = H * W, co = k->channels, cop = wn == 2 ? ws[1] : 0;
  if (wn != 2 || ws[0] != 9 * ci || cop < co || cop % 16 || (cop > 32 && cop % 48))
    return fail("adpc sparse conv: weights must be [9*Ci, CoP], CoP >= channels: 16, 32 or a multiple of 48");
  if (sn != 1 || ss[0] != cop) return fail("adpc sparse conv: shift must be [CoP]");
  if (in != 1 || bn != 1 || mn != 1 || ms[0] < hw) return fail("adpc sparse conv: index [N], band [B], mask [>= H*W]");
  if (tn != 2 || ts[1] != 2 || twn != 1 || tws[0] != ts[0]) return fail("adpc sparse conv: taps [K, 2], tap_weights [K]");
  int64_t N = is[0];
  for (int64_t q = 0; q < N; q++)
    if (index[q] >= hw) return fail("adpc sparse conv: computed pixel outside the map");
  int64_t os[4] = {1, H, W, co};
  OrtValue *ov;
  float *out;
  if ((st = api->KernelContext_GetOutput(ctx, 0, os, 4, &ov))) return st;
  if ((st = api->GetTensorMutableData(ov, (void **)&out))) return st;
  Job j = {x, w, shift, mask, index, out, NULL, ci, cop, co, H, W, N, (int)k->relu, NULL};
  if ((st = api->KernelContext_ParallelFor(ctx, conv_task, (size_t)((N + CHUNK - 1) / CHUNK), 0, &j))) return st;
  BandTable bt;
  if ((st = band_table(&bt, band_in, bs[0], taps, tw, ts[0], mask, H, W))) return st;
  float *fill = malloc(sizeof(float) * (size_t)(bt.nb * co + 1));
  if (!fill) {
    band_table_free(&bt);
    return api->CreateStatus(ORT_FAIL, "adpc sparse conv: out of memory");
  }
  j.bt = &bt, j.fill = fill;
  if (!(st = api->KernelContext_ParallelFor(ctx, fill_task, (size_t)bt.nb, 0, &j)) &&
      !(st = api->KernelContext_ParallelFor(ctx, rows_task, (size_t)((hw + ROWS - 1) / ROWS), 0, &j))) {
    for (int b = 0; b < bt.nb; b++) {
      float *o = out + (int64_t)bt.band[b] * co;
      const float *f = fill + (int64_t)b * co;
      for (int64_t c = 0; c < co; c++) o[c] = k->relu && f[c] < 0.f ? 0.f : f[c];
    }
  }
  free(fill);
  band_table_free(&bt);
  return st;
}

static OrtStatus *create(const OrtCustomOp *op, const OrtApi *a, const OrtKernelInfo *info, void **kernel) {
  (void)op, (void)a;
  Kernel *k = calloc(1, sizeof *k);
  if (!k) return api->CreateStatus(ORT_FAIL, "adpc sparse conv: out of memory");
  OrtStatus *st = api->KernelInfoGetAttribute_int64(info, "channels", &k->channels);
  if (!st) st = api->KernelInfoGetAttribute_int64(info, "relu", &k->relu);
  if (st) {
    free(k);
    return st;
  }
  *kernel = k;
  return NULL;
}
static void destroy(void *k) { free(k); }
static const char *name(const OrtCustomOp *op) { (void)op; return "MaskedConv3x3Rows"; }
static ONNXTensorElementDataType input_type(const OrtCustomOp *op, size_t i) {
  (void)op;
  return i == 3 || i == 5 || i == 6 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}
static size_t inputs(const OrtCustomOp *op) { (void)op; return 8; }

static OrtCustomOp op_conv;

// RegisterCustomOps is what OrtApi::RegisterCustomOpsLibrary_V2 calls.
OrtStatus *RegisterCustomOps(OrtSessionOptions *options, const OrtApiBase *base) {
  describe_op(&op_conv);
  op_conv.CreateKernelV2 = create;
  op_conv.KernelComputeV2 = compute;
  op_conv.KernelDestroy = destroy;
  op_conv.GetName = name;
  op_conv.GetInputType = input_type;
  op_conv.GetInputTypeCount = inputs;
  OrtCustomOp *ops[] = {&op_conv};
  return register_ops(options, base, ops, 1);
}
