// The C kernels of package native (kernels.c), called by kernels.go.
//
// Every feature map is channels-last: pixel p = i*w + j of an h x w grid has
// its c channels at data[p*ld .. p*ld+c). The Go wrappers validate every
// shape and index before calling; the kernels trust them.
#ifndef NATIVE_KERNELS_H
#define NATIVE_KERNELS_H

#include <stdint.h>

// A feature map view (Go's Map).
typedef struct {
  float *data;
  int64_t h, w, c, ld;
} nk_map;

// A fill tap (Go's Tap; same layout).
typedef struct {
  int32_t dy, dx;
  float w;
} nk_tap;

// The pixel classes (Go's Far, Band, Computed).
enum { NK_FAR = 0, NK_BAND = 1, NK_COMPUTED = 2 };

// The convolution's variants (instruction set and register blocking), 0 to
// nk_variants()-1, best first; nk_best_variant is the first the CPU runs.
int nk_variants(void);
const char *nk_variant_name(int v);
int nk_variant_supported(int v);
int nk_best_variant(void);
// nk_use_variant makes the kernels other than the convolution (which runs
// the variant it was packed for) run variant v; nk_best_variant restores.
void nk_use_variant(int v);

// nk_conv_packed_size and nk_conv_bias_size are the number of floats of a
// convolution of cout x cin x k x k packed for variant v, and of its bias.
int64_t nk_conv_packed_size(int v, int64_t cout, int64_t cin, int64_t k);
int64_t nk_conv_bias_size(int v, int64_t cout, int64_t cin);

// nk_conv_pack packs weight [cout][cin][k][k] (PyTorch order) for variant
// v, each output channel scaled by scale[o] (NULL: 1), into packed, and bias
// (NULL: 0) into pbias.
void nk_conv_pack(int v, float *packed, float *pbias, const float *weight, const float *scale, const float *bias,
                  int64_t cout, int64_t cin, int64_t k);

// nk_conv_rows writes the convolution (zero padding k/2) packed for variant
// v at the n output pixels rows[] of dst from src; zero is cin zeros (what
// taps outside src read). Each row stored is plus the residual map's row
// (res, res_ld floats per pixel; NULL: none), then clamped at 0 if relu.
void nk_conv_rows(int v, const float *packed, const float *pbias, const float *zero, int64_t cout, int64_t cin,
                  int64_t k, int64_t stride, nk_map dst, nk_map src, const float *res, int64_t res_ld, int relu,
                  const int64_t *rows, int64_t n);

// nk_fill, nk_epilogue, nk_resample, nk_avgpool, nk_from_nchw, nk_to_nchw:
// see their Go wrappers in kernels.go.
void nk_fill(nk_map dst, const uint8_t *cls, const float *shift, const nk_tap *taps, int64_t ntaps,
             const int64_t *band, int64_t n);
void nk_epilogue(nk_map dst, const uint8_t *cls, const float *shift, const float *res, int64_t res_ld, int relu,
                 int64_t p0, int64_t p1);
void nk_resample(nk_map dst, nk_map src, int64_t factor, int accumulate, int relu, int64_t y0, int64_t y1);
void nk_avgpool(nk_map dst, nk_map src, int64_t y0, int64_t y1);
void nk_from_nchw(nk_map dst, const float *src, int64_t p0, int64_t p1);
void nk_to_nchw(float *dst, nk_map src, int64_t p0, int64_t p1);

#endif
