// The kernels of package native: see kernels.h and the Go wrappers in
// kernels.go. Each is single-threaded over the range it is given.
//
// Every kernel comes in variants compiled for several instruction sets from
// one generic body, the second half of this file, which the first half
// includes once per variant, under that variant's target pragma, with VW
// (floats per vector), PX (output pixels per convolution block), NV
// (vectors of output channels per block) and VARIANT (the suffix of its
// names) defined. The kernels run the best variant the CPU has; a Conv is
// packed for one variant's vector width and runs with it.
#ifndef VARIANT

#include <string.h>

#include "kernels.h"

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define NK(name) CAT(name, VARIANT)

// PyTorch's source index for align_corners=False with scale 1/f: the first
// neighbour, the second (clamped at the border) and the second's weight.
static inline void source(int64_t d, int64_t f, int64_t n, int64_t *i0, int64_t *i1, float *l1) {
  float s = ((float)d + 0.5f) * (1.f / (float)f) - 0.5f;
  if (s < 0.f) s = 0.f;
  *i0 = (int64_t)s;
  *i1 = *i0 + 1 < n ? *i0 + 1 : n - 1;
  *l1 = s - (float)*i0;
}

// The pixel tiles of the NCHW transpositions handled per channel tile: 32
// (512 pixels with AVX-512) reads each plane 2 KB at a time; 4 took 1.8x as
// long on W48's 256-channel stage input (planes 128 KB apart: the same cache
// sets).
#define SPAN 32

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#define VARIANT avx512
#define VW 16
#define PX 8
#define NV 3
#include "kernels.c"
#undef VARIANT
#undef VW
#undef PX
#undef NV
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define VARIANT avx2
#define VW 8
#define PX 4
#define NV 3
#include "kernels.c"
#undef VARIANT
#undef VW
#undef PX
#undef NV
#pragma GCC pop_options
#endif

// The portable variant: SSE2 on x86-64 (16 vector registers), NEON on arm64
// (32: a larger block; 6 x 3 accumulators leave room for the 3 weight
// vectors and the 6 pixels' inputs without spilling).
#define VARIANT generic
#define VW 4
#if defined(__aarch64__)
#define PX 6
#else
#define PX 4
#endif
#define NV 3
#include "kernels.c"
#undef VARIANT
#undef VW
#undef PX
#undef NV

#define ENTRY(v) \
  {#v, vw_##v, nv_##v, conv_rows_##v, fill_##v, epilogue_##v, resample_##v, avgpool_##v, from_nchw_##v, to_nchw_##v}

static const struct {
  const char *name;
  int64_t vw, nv;
  void (*conv_rows)(const float *packed, const float *pbias, const float *zero, int64_t cout, int64_t cin,
                    int64_t k, int64_t stride, int pair, nk_map dst, nk_map src, const float *res, int64_t res_ld,
                    int relu, const int64_t *rows, int64_t n);
  void (*fill)(nk_map dst, const uint8_t *cls, const float *shift, const nk_tap *taps, int64_t ntaps,
               const int64_t *band, int64_t n);
  void (*epilogue)(nk_map dst, const uint8_t *cls, const float *shift, const float *res, int64_t res_ld, int relu,
                   int64_t p0, int64_t p1);
  void (*resample)(nk_map dst, nk_map src, int64_t factor, int accumulate, int relu, int64_t y0, int64_t y1);
  void (*avgpool)(nk_map dst, nk_map src, int64_t y0, int64_t y1);
  void (*from_nchw)(nk_map dst, const float *src, int64_t p0, int64_t p1);
  void (*to_nchw)(float *dst, nk_map src, int64_t p0, int64_t p1);
} variants[] = {
#if defined(__x86_64__)
    ENTRY(avx512),
    ENTRY(avx2),
#endif
    ENTRY(generic),
};

#define NVARIANTS ((int)(sizeof variants / sizeof variants[0]))

int nk_variants(void) { return NVARIANTS; }

const char *nk_variant_name(int v) { return variants[v].name; }

int nk_variant_supported(int v) {
  if (v < 0 || v >= NVARIANTS) return 0;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (variants[v].vw == 16) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  if (variants[v].vw == 8) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return 1;
}

// best is the variant the kernels other than the convolution run: set by
// nk_best_variant, which the Go package's initialisation calls first, or by
// nk_use_variant (tests). Atomic: a test may switch it while other tests run.
static int best = NVARIANTS - 1;

static int current(void) { return __atomic_load_n(&best, __ATOMIC_RELAXED); }

int nk_best_variant(void) {
  int v = 0;
  while (!nk_variant_supported(v)) v++;
  __atomic_store_n(&best, v, __ATOMIC_RELAXED);
  return v;
}

void nk_use_variant(int v) { __atomic_store_n(&best, v, __ATOMIC_RELAXED); }

// paired tells whether a convolution runs in pairs of input channels for
// variant v: then each vector holds VW/2 output channels x 2 input channels
// (reduced when the block is stored) instead of VW output channels. That pads
// the output channels to a multiple of VW/2 instead of VW: 18 channels are
// 24 instead of 32 with AVX-512, 3/4 of the multiply-adds. Chosen where it
// pads less; the input channels must be even (no pair straddles a tap).
static int paired(int v, int64_t cout, int64_t cin) {
  int64_t vw = variants[v].vw, h = vw / 2;
  return cin % 2 == 0 && (cout + h - 1) / h * h < (cout + vw - 1) / vw * vw;
}

// Output channels per vector, and the output channels padded to them.
static int64_t lanes(int v, int64_t cout, int64_t cin) { return variants[v].vw / (paired(v, cout, cin) ? 2 : 1); }

static int64_t padded(int v, int64_t cout, int64_t cin) {
  int64_t l = lanes(v, cout, cin);
  return (cout + l - 1) / l * l;
}

int64_t nk_conv_packed_size(int v, int64_t cout, int64_t cin, int64_t k) { return k * k * cin * padded(v, cout, cin); }

int64_t nk_conv_bias_size(int v, int64_t cout, int64_t cin) {
  return padded(v, cout, cin) / lanes(v, cout, cin) * variants[v].vw;
}

// The output channels are cut in groups of nv vectors (the last group may
// have fewer); group g's weights are one block of k*k*cin x its channels,
// at the offset of its first channel times k*k*cin: Rows streams one
// group's block per output block. Inside, input index K = t*cin + ci (t =
// ky*k + kx) major; for K, output j of the group is at K*width + j; paired,
// input pair q = K/2 is major, then the vector, then output and K%2
// interleaved. The bias is one vector per output vector (paired: the bias
// in the even lanes, 0 in the odd).
void nk_conv_pack(int v, float *packed, float *pbias, const float *weight, const float *scale, const float *bias,
                  int64_t cout, int64_t cin, int64_t k) {
  const int64_t kk = k * k, vw = variants[v].vw, l = lanes(v, cout, cin), cp = padded(v, cout, cin),
                group = l * variants[v].nv;
  const int pair = l < vw;
  memset(packed, 0, sizeof(float) * (size_t)nk_conv_packed_size(v, cout, cin, k));
  memset(pbias, 0, sizeof(float) * (size_t)nk_conv_bias_size(v, cout, cin));
  for (int64_t o = 0; o < cout; o++) {
    int64_t g0 = o / group * group, width = cp - g0 < group ? cp - g0 : group, j = o - g0;
    float s = scale ? scale[o] : 1.f;
    pbias[o / l * vw + (pair ? 2 * (o % l) : o % l)] = bias ? bias[o] : 0.f;
    for (int64_t c = 0; c < cin; c++)
      for (int64_t t = 0; t < kk; t++) {
        int64_t K = t * cin + c;
        int64_t at = pair ? K / 2 * 2 * width + j / l * vw + 2 * (j % l) + K % 2 : K * width + j;
        packed[g0 * kk * cin + at] = s * weight[(o * cin + c) * kk + t];
      }
  }
}

void nk_conv_rows(int v, const float *packed, const float *pbias, const float *zero, int64_t cout, int64_t cin,
                  int64_t k, int64_t stride, nk_map dst, nk_map src, const float *res, int64_t res_ld, int relu,
                  const int64_t *rows, int64_t n) {
  variants[v].conv_rows(packed, pbias, zero, cout, cin, k, stride, paired(v, cout, cin), dst, src, res, res_ld, relu,
                        rows, n);
}

void nk_fill(nk_map dst, const uint8_t *cls, const float *shift, const nk_tap *taps, int64_t ntaps,
             const int64_t *band, int64_t n) {
  variants[current()].fill(dst, cls, shift, taps, ntaps, band, n);
}

void nk_epilogue(nk_map dst, const uint8_t *cls, const float *shift, const float *res, int64_t res_ld, int relu,
                 int64_t p0, int64_t p1) {
  variants[current()].epilogue(dst, cls, shift, res, res_ld, relu, p0, p1);
}

void nk_resample(nk_map dst, nk_map src, int64_t factor, int accumulate, int relu, int64_t y0, int64_t y1) {
  variants[current()].resample(dst, src, factor, accumulate, relu, y0, y1);
}

void nk_avgpool(nk_map dst, nk_map src, int64_t y0, int64_t y1) { variants[current()].avgpool(dst, src, y0, y1); }

void nk_from_nchw(nk_map dst, const float *src, int64_t p0, int64_t p1) {
  variants[current()].from_nchw(dst, src, p0, p1);
}

void nk_to_nchw(float *dst, nk_map src, int64_t p0, int64_t p1) { variants[current()].to_nchw(dst, src, p0, p1); }

#else  // The generic body of one variant (see the top of the file).

typedef float NK(vec) __attribute__((vector_size(VW * 4)));
// The same for loads and stores at any float's address.
typedef float NK(uvec) __attribute__((vector_size(VW * 4), aligned(4), may_alias));
#define VEC NK(vec)
#define UVEC NK(uvec)

enum { NK(vw) = VW, NK(nv) = NV };

// One block: PX output pixels x nv vectors of output channels from c0,
// accumulated in registers over the input segments: in[u*nseg + s] is the
// seglen contiguous input values pixel u multiplies with segment s of the
// packed taps (one tap's row, a zero row outside the map, or the three
// horizontal taps' adjacent rows at once). w is the group's packed block;
// only the first np pixels are stored, each plus its residual row res[u]
// (when res[u] is not NULL) and then clamped at 0 (when relu): the same
// float operations, in the same order, as the epilogue after the store.
// Paired (see paired), a vector holds VW/2 output channels x (even, odd)
// input channel, both inputs broadcast by one 64-bit load, and the store
// adds each output's two lanes.
static inline __attribute__((always_inline)) void NK(block)(const float *const *in, int64_t nseg, int64_t seglen,
                                                           const float *w, const float *bias, float *const *out,
                                                           const float *const *res, int relu, int np, int64_t c0,
                                                           int64_t cout, const int nv, const int pair) {
  typedef double DVEC __attribute__((vector_size(VW * 4)));
  typedef double UDOUBLE __attribute__((aligned(4), may_alias));
  typedef int32_t IVEC __attribute__((vector_size(VW * 4)));
  typedef int64_t LVEC __attribute__((vector_size(VW * 4)));
  const int64_t lanes = pair ? VW / 2 : VW, step = pair ? 2 : 1;
  VEC acc[PX][NV];
  for (int v = 0; v < nv; v++) {
    VEC b = *(const UVEC *)(bias + v * VW);
    for (int u = 0; u < PX; u++) acc[u][v] = b;
  }
  for (int64_t s = 0; s < nseg; s++) {
    const float *x[PX];
    for (int u = 0; u < PX; u++) x[u] = in[u * nseg + s];
    const float *wt = w + s * seglen * nv * lanes;
    for (int64_t c = 0; c < seglen; c += step, wt += nv * VW) {
      VEC wv[NV];
      for (int v = 0; v < nv; v++) wv[v] = *(const UVEC *)(wt + v * VW);
      for (int u = 0; u < PX; u++) {
        if (pair) {
          // A broadcast, not arithmetic: the double's bits are two floats.
          VEC xu = (VEC)__builtin_shuffle((DVEC){*(const UDOUBLE *)(x[u] + c)}, (LVEC){0});
          for (int v = 0; v < nv; v++) acc[u][v] += xu * wv[v];
        } else {
          float xu = x[u][c];
          for (int v = 0; v < nv; v++) acc[u][v] += xu * wv[v];
        }
      }
    }
  }
  IVEC even, odd;
  for (int i = 0; i < VW; i++) even[i] = 2 * i, odd[i] = 2 * i + 1;
  for (int u = 0; u < np; u++)
    for (int v = 0; v < nv; v += pair ? 2 : 1) {
      VEC sum = acc[u][v];
      int64_t base = c0 + v * lanes, valid = VW;
      if (pair) {
        VEC b = v + 1 < nv ? acc[u][v + 1] : sum;
        sum = __builtin_shuffle(sum, b, even) + __builtin_shuffle(sum, b, odd);
        valid = v + 1 < nv ? VW : VW / 2;
      }
      int64_t left = cout - base;
      float *o = out[u] + base;
      if (left >= VW) {
        if (res[u]) sum += *(const UVEC *)(res[u] + base);
        if (relu) sum = (VEC)((IVEC)sum & (sum > (VEC){}));
        *(UVEC *)o = sum;
      } else {
        for (int64_t i = 0; i < left && i < valid; i++) {
          float x = sum[i];
          if (res[u]) x += res[u][base + i];
          o[i] = relu && !(x > 0.f) ? 0.f : x;
        }
      }
    }
}

// conv_rows runs the rows in blocks of PX pixels, each block over every
// group of output channels. zero holds k*cin zeros; res (NULL: none) is the
// residual map's data, res_ld its floats per pixel.
static void NK(conv_rows)(const float *packed, const float *pbias, const float *zero, int64_t cout, int64_t cin,
                          int64_t k, int64_t stride, int pair, nk_map dst, nk_map src, const float *res,
                          int64_t res_ld, int relu, const int64_t *rows, int64_t n) {
  const int64_t kk = k * k, pad = k / 2, lanes = pair ? VW / 2 : VW, nvec = (cout + lanes - 1) / lanes;
  // A 3x3 tap row of a pixel whose three horizontal taps are inside the
  // map is one contiguous segment when the map has no gaps between pixels.
  const int joinable = k == 3 && src.ld == cin;
  int64_t dy[9], dx[9];  // tap t's offset from the pixel's centre in the input
  for (int64_t t = 0; t < kk; t++) dy[t] = t / k - pad, dx[t] = t % k - pad;
  const float *in[PX * 9], *rs[PX];
  float *out[PX];
  for (int64_t r0 = 0; r0 < n; r0 += PX) {
    int np = n - r0 < PX ? (int)(n - r0) : PX;
    int64_t i[PX], j[PX];
    int joined = joinable;
    for (int u = 0; u < PX; u++) {  // a short block repeats its last pixel
      int64_t p = rows[r0 + (u < np ? u : np - 1)];
      i[u] = p / dst.w, j[u] = p % dst.w;
      out[u] = dst.data + p * dst.ld;
      rs[u] = res ? res + p * res_ld : NULL;
      joined &= j[u] * stride >= 1 && j[u] * stride + 1 < src.w;
    }
    const int64_t nseg = joined ? 3 : kk, seglen = joined ? 3 * cin : cin, step = joined ? 3 : 1;
    for (int u = 0; u < PX; u++)
      for (int64_t s = 0; s < nseg; s++) {
        int64_t y = i[u] * stride + dy[s * step], x = j[u] * stride + dx[s * step];
        in[u * nseg + s] =
            y < 0 || y >= src.h || x < 0 || x >= src.w ? zero : src.data + (y * src.w + x) * src.ld;
      }
    for (int64_t v0 = 0; v0 < nvec; v0 += NV) {
      const float *w = packed + v0 * lanes * kk * cin, *b = pbias + v0 * VW;
      int64_t c0 = v0 * lanes;
      int nv = nvec - v0 < NV ? (int)(nvec - v0) : NV;
      // The block with nv and pair constants (the accumulators stay in
      // registers).
#define GROUP(pair)                                                 \
  switch (nv) {                                                     \
    case 1:                                                         \
      NK(block)(in, nseg, seglen, w, b, out, rs, relu, np, c0, cout, 1, pair);  \
      break;                                                        \
    case 2:                                                         \
      NK(block)(in, nseg, seglen, w, b, out, rs, relu, np, c0, cout, 2, pair);  \
      break;                                                        \
    default:                                                        \
      NK(block)(in, nseg, seglen, w, b, out, rs, relu, np, c0, cout, NV, pair); \
  }
      if (pair) {
        GROUP(1)
      } else {
        GROUP(0)
      }
#undef GROUP
    }
  }
}

// fill_vectors writes channels [c0, c0 + n*VW) of out: the k rows weighted
// by ws, summed in registers (two chains: the sums are latency-bound), plus
// left times the shift.
static inline __attribute__((always_inline)) void NK(fill_vectors)(float *out, const float *const *rows,
                                                                  const float *ws, int64_t k, float left,
                                                                  const float *shift, int64_t c0, const int n) {
  VEC acc[4], odd[4];
  for (int v = 0; v < n; v++) acc[v] = left * *(const UVEC *)(shift + c0 + v * VW), odd[v] = (VEC){};
  int64_t t = 0;
  for (; t + 1 < k; t += 2)
    for (int v = 0; v < n; v++) {
      acc[v] += ws[t] * *(const UVEC *)(rows[t] + c0 + v * VW);
      odd[v] += ws[t + 1] * *(const UVEC *)(rows[t + 1] + c0 + v * VW);
    }
  if (t < k)
    for (int v = 0; v < n; v++) acc[v] += ws[t] * *(const UVEC *)(rows[t] + c0 + v * VW);
  for (int v = 0; v < n; v++) *(UVEC *)(out + c0 + v * VW) = acc[v] + odd[v];
}

// fill: see nk_fill. Per band pixel: the computed neighbours' rows weighted
// and summed in registers, plus the shift times what their weights leave.
// The computed taps are listed first, in rounds of MAXTAPS taps (a later
// round adds the earlier rounds' sum as one more row); for a pixel whose
// taps are all inside the map the list is built without branches (which
// neighbours are computed changes from pixel to pixel: branches on it
// mispredict).
static void NK(fill)(nk_map dst, const uint8_t *cls, const float *shift, const nk_tap *taps, int64_t ntaps,
                     const int64_t *band, int64_t n) {
  enum { MAXTAPS = 128 };
  const int64_t nc = dst.c, whole = nc / VW * VW;
  int64_t off[MAXTAPS], offld[MAXTAPS];  // a tap's pixel offset, and its offset in floats
  const float *rows[MAXTAPS + 1];
  float ws[MAXTAPS + 1];
  for (int64_t t0 = 0; t0 < ntaps; t0 += MAXTAPS) {
    const int64_t m = ntaps - t0 < MAXTAPS ? ntaps - t0 : MAXTAPS;
    const nk_tap *tp = taps + t0;
    int64_t reach = 0;
    for (int64_t t = 0; t < m; t++) {
      off[t] = tp[t].dy * dst.w + tp[t].dx;
      offld[t] = off[t] * dst.ld;
      int64_t ay = tp[t].dy < 0 ? -(int64_t)tp[t].dy : tp[t].dy, ax = tp[t].dx < 0 ? -(int64_t)tp[t].dx : tp[t].dx;
      reach = ay > reach ? ay : reach;
      reach = ax > reach ? ax : reach;
    }
    for (int64_t b = 0; b < n; b++) {
      const int64_t p = band[b], i = p / dst.w, j = p % dst.w;
      float *out = dst.data + p * dst.ld;
      int64_t k = 0;
      if (i >= reach && i + reach < dst.h && j >= reach && j + reach < dst.w) {
        for (int64_t t = 0; t < m; t++) {
          rows[k] = out + offld[t];
          ws[k] = tp[t].w;
          k += cls[p + off[t]] == NK_COMPUTED;
        }
      } else {
        for (int64_t t = 0; t < m; t++) {
          int64_t y = i + tp[t].dy, x = j + tp[t].dx;
          if (y < 0 || y >= dst.h || x < 0 || x >= dst.w || cls[p + off[t]] != NK_COMPUTED) continue;
          rows[k] = out + offld[t];
          ws[k++] = tp[t].w;
        }
      }
      float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;  // the listed weights' sum, four chains
      int64_t t = 0;
      for (; t + 3 < k; t += 4) s0 += ws[t], s1 += ws[t + 1], s2 += ws[t + 2], s3 += ws[t + 3];
      for (; t < k; t++) s0 += ws[t];
      float left = (t0 == 0 ? 1.f : 0.f) - ((s0 + s1) + (s2 + s3));
      if (t0 > 0) {  // the earlier rounds' sum
        rows[k] = out;
        ws[k++] = 1.f;
      }
      int64_t c0 = 0;
      for (; c0 + 4 * VW <= whole; c0 += 4 * VW) NK(fill_vectors)(out, rows, ws, k, left, shift, c0, 4);
      switch ((whole - c0) / VW) {
        case 3:
          NK(fill_vectors)(out, rows, ws, k, left, shift, c0, 3);
          break;
        case 2:
          NK(fill_vectors)(out, rows, ws, k, left, shift, c0, 2);
          break;
        case 1:
          NK(fill_vectors)(out, rows, ws, k, left, shift, c0, 1);
          break;
      }
      if (whole < nc && nc >= VW && ntaps <= MAXTAPS) {
        // The last channels as the vector that ends at nc: it overlaps the
        // ones stored, with the same values (no carried row reads them).
        NK(fill_vectors)(out, rows, ws, k, left, shift, nc - VW, 1);
      } else {
        for (int64_t c = whole; c < nc; c++) {
          float s = left * shift[c];
          for (int64_t t = 0; t < k; t++) s += ws[t] * rows[t][c];
          out[c] = s;
        }
      }
    }
  }
}

// epilogue: see nk_epilogue.
static void NK(epilogue)(nk_map dst, const uint8_t *cls, const float *shift, const float *res, int64_t res_ld,
                         int relu, int64_t p0, int64_t p1) {
  const int64_t nc = dst.c;
  for (int64_t p = p0; p < p1; p++) {
    float *restrict out = dst.data + p * dst.ld;
    const float *restrict r = res ? res + p * res_ld : NULL;
    if (cls[p] == NK_FAR) {
      if (r)
        for (int64_t c = 0; c < nc; c++) out[c] = shift[c] + r[c];
      else
        for (int64_t c = 0; c < nc; c++) out[c] = shift[c];
    } else if (r) {
      for (int64_t c = 0; c < nc; c++) out[c] += r[c];
    }
    if (relu)
      for (int64_t c = 0; c < nc; c++) out[c] = out[c] > 0.f ? out[c] : 0.f;
  }
}

// resample: see nk_resample. The sum in PyTorch's order: rows of the two
// source rows' horizontal interpolations. The columns' sources and weights
// are found once per call, for COLS columns at a time.
static void NK(resample)(nk_map dst, nk_map src, int64_t factor, int accumulate, int relu, int64_t y0, int64_t y1) {
  enum { COLS = 256 };
  const int64_t nc = dst.c;
  int64_t off0[COLS], off1[COLS];  // the two source columns' offsets in floats
  float wl0[COLS], wl1[COLS];
  for (int64_t x0 = 0; x0 < dst.w; x0 += COLS) {
    const int64_t m = dst.w - x0 < COLS ? dst.w - x0 : COLS;
    for (int64_t x = 0; x < m; x++) {
      int64_t i0, i1;
      source(x0 + x, factor, src.w, &i0, &i1, &wl1[x]);
      wl0[x] = 1.f - wl1[x], off0[x] = i0 * src.ld, off1[x] = i1 * src.ld;
    }
    for (int64_t y = y0; y < y1; y++) {
      int64_t h0, h1;
      float hl1;
      source(y, factor, src.h, &h0, &h1, &hl1);
      const float hl0 = 1.f - hl1;
      const float *row0 = src.data + h0 * src.w * src.ld, *row1 = src.data + h1 * src.w * src.ld;
      for (int64_t x = 0; x < m; x++) {
        const float *restrict a = row0 + off0[x], *restrict b = row0 + off1[x];
        const float *restrict c = row1 + off0[x], *restrict d = row1 + off1[x];
        const float w0 = wl0[x], w1 = wl1[x];
        float *restrict out = dst.data + (y * dst.w + x0 + x) * dst.ld;
        if (factor == 1) {  // a copy
          if (accumulate)
            for (int64_t ch = 0; ch < nc; ch++) out[ch] += a[ch];
          else
            for (int64_t ch = 0; ch < nc; ch++) out[ch] = a[ch];
        } else if (accumulate) {
          for (int64_t ch = 0; ch < nc; ch++) out[ch] += hl0 * (w0 * a[ch] + w1 * b[ch]) + hl1 * (w0 * c[ch] + w1 * d[ch]);
        } else {
          for (int64_t ch = 0; ch < nc; ch++) out[ch] = hl0 * (w0 * a[ch] + w1 * b[ch]) + hl1 * (w0 * c[ch] + w1 * d[ch]);
        }
        if (relu)
          for (int64_t ch = 0; ch < nc; ch++) out[ch] = out[ch] > 0.f ? out[ch] : 0.f;
      }
    }
  }
}

// avgpool: see nk_avgpool.
static void NK(avgpool)(nk_map dst, nk_map src, int64_t y0, int64_t y1) {
  const int64_t nc = dst.c;
  for (int64_t y = y0; y < y1; y++)
    for (int64_t x = 0; x < dst.w; x++) {
      const float *restrict a = src.data + (2 * y * src.w + 2 * x) * src.ld, *restrict b = a + src.ld;
      const float *restrict c = a + src.w * src.ld, *restrict d = c + src.ld;
      float *restrict out = dst.data + (y * dst.w + x) * dst.ld;
      for (int64_t ch = 0; ch < nc; ch++) out[ch] = (a[ch] + b[ch] + c[ch] + d[ch]) / 4.f;
    }
}

// transpose transposes the VW x VW matrix of rows r in registers: at each
// scale s the off-diagonal s x s blocks of every 2s x 2s block swap.
static inline __attribute__((always_inline)) void NK(transpose)(VEC r[VW]) {
  typedef int32_t IVEC __attribute__((vector_size(VW * 4)));
#pragma GCC unroll 8
  for (int s = VW / 2; s >= 1; s /= 2) {
    IVEC lo, hi;
    for (int j = 0; j < VW; j++) lo[j] = j & s ? VW + j - s : j, hi[j] = j & s ? VW + j : j + s;
#pragma GCC unroll 16
    for (int i = 0; i < VW; i++)
      if (!(i & s)) {
        VEC a = r[i], b = r[i + s];
        r[i] = __builtin_shuffle(a, b, lo), r[i + s] = __builtin_shuffle(a, b, hi);
      }
  }
}

// from_nchw and to_nchw: see nk_from_nchw, nk_to_nchw. Tiles of VW pixels x
// VW channels are transposed in registers, SPAN tiles of pixels in a row per
// channel tile (a few cache lines of each plane at once; one tile when fewer
// are left); the channels past the last whole tile, and the pixels past the
// last whole tile, one by one.
static void NK(from_nchw)(nk_map dst, const float *src, int64_t p0, int64_t p1) {
  const int64_t hw = dst.h * dst.w, whole = dst.c / VW * VW;
  int64_t q = p0;
  for (int64_t span; q + VW <= p1; q += span) {
    span = q + SPAN * VW <= p1 ? SPAN * VW : VW;
    for (int64_t c0 = 0; c0 < whole; c0 += VW)
      for (int64_t q1 = q; q1 < q + span; q1 += VW) {
        VEC r[VW];
        for (int i = 0; i < VW; i++) r[i] = *(const UVEC *)(src + (c0 + i) * hw + q1);
        NK(transpose)(r);
        for (int u = 0; u < VW; u++) *(UVEC *)(dst.data + (q1 + u) * dst.ld + c0) = r[u];
      }
    for (int64_t c = whole; c < dst.c; c++)
      for (int64_t u = q; u < q + span; u++) dst.data[u * dst.ld + c] = src[c * hw + u];
  }
  for (; q < p1; q++)
    for (int64_t c = 0; c < dst.c; c++) dst.data[q * dst.ld + c] = src[c * hw + q];
}

static void NK(to_nchw)(float *dst, nk_map src, int64_t p0, int64_t p1) {
  const int64_t hw = src.h * src.w, whole = src.c / VW * VW;
  int64_t q = p0;
  for (int64_t span; q + VW <= p1; q += span) {
    span = q + SPAN * VW <= p1 ? SPAN * VW : VW;
    for (int64_t c0 = 0; c0 < whole; c0 += VW)
      for (int64_t q1 = q; q1 < q + span; q1 += VW) {
        VEC r[VW];
        for (int u = 0; u < VW; u++) r[u] = *(const UVEC *)(src.data + (q1 + u) * src.ld + c0);
        NK(transpose)(r);
        for (int i = 0; i < VW; i++) *(UVEC *)(dst + (c0 + i) * hw + q1) = r[i];
      }
    for (int64_t c = whole; c < src.c; c++)
      for (int64_t u = q; u < q + span; u++) dst[c * hw + u] = src.data[u * src.ld + c];
  }
  for (; q < p1; q++)
    for (int64_t c = 0; c < src.c; c++) dst[c * hw + q] = src.data[q * src.ld + c];
}

#undef VEC
#undef UVEC
#endif
