// The kernels of package native: see kernels.h and the Go wrappers in
// kernels.go. Plain C loops (the reference form); single-threaded over the
// range each call is given.
#include "kernels.h"

#include <string.h>

int64_t nk_conv_packed_size(int64_t cout, int64_t cin, int64_t k) { return k * k * cin * cout; }

int64_t nk_conv_bias_size(int64_t cout) { return cout; }

// packed[t][ci][o], t = ky*k + kx.
void nk_conv_pack(float *packed, float *pbias, const float *weight, const float *scale, const float *bias,
                  int64_t cout, int64_t cin, int64_t k) {
  for (int64_t o = 0; o < cout; o++) {
    float s = scale ? scale[o] : 1.f;
    pbias[o] = bias ? bias[o] : 0.f;
    for (int64_t c = 0; c < cin; c++)
      for (int64_t t = 0; t < k * k; t++) packed[(t * cin + c) * cout + o] = s * weight[(o * cin + c) * k * k + t];
  }
}

void nk_conv_rows(const float *packed, const float *pbias, int64_t cout, int64_t cin, int64_t k, int64_t stride,
                  nk_map dst, nk_map src, const int64_t *rows, int64_t n) {
  int64_t pad = k / 2;
  for (int64_t r = 0; r < n; r++) {
    int64_t p = rows[r], i = p / dst.w, j = p % dst.w;
    float *out = dst.data + p * dst.ld;
    for (int64_t o = 0; o < cout; o++) out[o] = pbias[o];
    for (int64_t ky = 0; ky < k; ky++) {
      int64_t y = i * stride - pad + ky;
      if (y < 0 || y >= src.h) continue;
      for (int64_t kx = 0; kx < k; kx++) {
        int64_t x = j * stride - pad + kx;
        if (x < 0 || x >= src.w) continue;
        const float *in = src.data + (y * src.w + x) * src.ld;
        const float *w = packed + (ky * k + kx) * cin * cout;
        for (int64_t c = 0; c < cin; c++)
          for (int64_t o = 0; o < cout; o++) out[o] += in[c] * w[c * cout + o];
      }
    }
  }
}

void nk_fill(nk_map dst, const uint8_t *cls, const float *shift, const nk_tap *taps, int64_t ntaps,
             const int64_t *band, int64_t n) {
  for (int64_t b = 0; b < n; b++) {
    int64_t p = band[b], i = p / dst.w, j = p % dst.w;
    float *out = dst.data + p * dst.ld;
    for (int64_t c = 0; c < dst.c; c++) out[c] = shift[c];
    for (int64_t t = 0; t < ntaps; t++) {
      int64_t y = i + taps[t].dy, x = j + taps[t].dx;
      if (y < 0 || y >= dst.h || x < 0 || x >= dst.w || cls[y * dst.w + x] != NK_COMPUTED) continue;
      const float *in = dst.data + (y * dst.w + x) * dst.ld;
      for (int64_t c = 0; c < dst.c; c++) out[c] += taps[t].w * (in[c] - shift[c]);
    }
  }
}

void nk_epilogue(nk_map dst, const uint8_t *cls, const float *shift, const float *res, int64_t res_ld, int relu,
                 int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; p++) {
    float *out = dst.data + p * dst.ld;
    const float *r = res ? res + p * res_ld : NULL;
    for (int64_t c = 0; c < dst.c; c++) {
      float v = cls[p] == NK_FAR ? shift[c] : out[c];
      if (r) v += r[c];
      if (relu && v < 0.f) v = 0.f;
      out[c] = v;
    }
  }
}

// PyTorch's source index for align_corners=False with scale 1/f: the first
// neighbour, the second (clamped) and the second's weight.
static void source(int64_t d, int64_t f, int64_t n, int64_t *i0, int64_t *i1, float *l1) {
  float s = ((float)d + 0.5f) * (1.f / (float)f) - 0.5f;
  if (s < 0.f) s = 0.f;
  *i0 = (int64_t)s;
  *i1 = *i0 + 1 < n ? *i0 + 1 : n - 1;
  *l1 = s - (float)*i0;
}

void nk_resample(nk_map dst, nk_map src, int64_t factor, int accumulate, int relu, int64_t y0, int64_t y1) {
  for (int64_t y = y0; y < y1; y++) {
    int64_t h0, h1;
    float hl1;
    source(y, factor, src.h, &h0, &h1, &hl1);
    float hl0 = 1.f - hl1;
    for (int64_t x = 0; x < dst.w; x++) {
      int64_t w0, w1;
      float wl1;
      source(x, factor, src.w, &w0, &w1, &wl1);
      float wl0 = 1.f - wl1;
      const float *a = src.data + (h0 * src.w + w0) * src.ld, *b = src.data + (h0 * src.w + w1) * src.ld;
      const float *c = src.data + (h1 * src.w + w0) * src.ld, *d = src.data + (h1 * src.w + w1) * src.ld;
      float *out = dst.data + (y * dst.w + x) * dst.ld;
      for (int64_t ch = 0; ch < dst.c; ch++) {
        float v = hl0 * (wl0 * a[ch] + wl1 * b[ch]) + hl1 * (wl0 * c[ch] + wl1 * d[ch]);
        if (accumulate) v += out[ch];
        if (relu && v < 0.f) v = 0.f;
        out[ch] = v;
      }
    }
  }
}

void nk_avgpool(nk_map dst, nk_map src, int64_t y0, int64_t y1) {
  for (int64_t y = y0; y < y1; y++)
    for (int64_t x = 0; x < dst.w; x++) {
      const float *a = src.data + (2 * y * src.w + 2 * x) * src.ld, *b = a + src.ld;
      const float *c = a + src.w * src.ld, *d = c + src.ld;
      float *out = dst.data + (y * dst.w + x) * dst.ld;
      for (int64_t ch = 0; ch < dst.c; ch++) out[ch] = (a[ch] + b[ch] + c[ch] + d[ch]) / 4.f;
    }
}

void nk_from_nchw(nk_map dst, const float *src, int64_t p0, int64_t p1) {
  int64_t hw = dst.h * dst.w;
  for (int64_t p = p0; p < p1; p++)
    for (int64_t c = 0; c < dst.c; c++) dst.data[p * dst.ld + c] = src[c * hw + p];
}

void nk_to_nchw(float *dst, nk_map src, int64_t p0, int64_t p1) {
  int64_t hw = src.h * src.w;
  for (int64_t p = p0; p < p1; p++)
    for (int64_t c = 0; c < src.c; c++) dst[c * hw + p] = src.data[p * src.ld + c];
}
