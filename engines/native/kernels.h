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

// nk_conv_packed_size is the number of floats nk_conv_pack writes for a
// convolution of cout x cin x k x k.
int64_t nk_conv_packed_size(int64_t cout, int64_t cin, int64_t k);

// nk_conv_pack packs weight [cout][cin][k][k] (PyTorch order), each output
// channel scaled by scale[o] (NULL: 1), into packed (nk_conv_packed_size
// floats) and bias (NULL: 0) into pbias (cout padded, nk_conv_bias_size).
void nk_conv_pack(float *packed, float *pbias, const float *weight, const float *scale, const float *bias,
                  int64_t cout, int64_t cin, int64_t k);

// nk_conv_bias_size is the number of floats of the packed bias.
int64_t nk_conv_bias_size(int64_t cout);

// nk_conv_rows writes the convolution (zero padding k/2) at the n output
// pixels rows[] of dst from src.
void nk_conv_rows(const float *packed, const float *pbias, int64_t cout, int64_t cin, int64_t k, int64_t stride,
                  nk_map dst, nk_map src, const int64_t *rows, int64_t n);

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
