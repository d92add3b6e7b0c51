"""Pose data: synthetic articulated figures with the 16 MPII joints, drawn
as capsules (limbs, torso) and a disc (head) in random poses, scales and
clothing colours over the scene backgrounds, partly hidden by Fashion-MNIST
occluders. Targets are Gaussian heatmaps at the output stride; the metric is
PCKh@0.5 (see `pckh`).

Coordinates are (x, y) in input pixels with pixel centres at integers. A
heatmap cell (i, j) at stride s covers input pixel centre
((j + 0.5) s - 0.5, (i + 0.5) s - 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scenes import SplitSet, background, paste, resize, rng_for

JOINTS = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
          "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder",
          "l_elbow", "l_wrist")
SKELETON = ((0, 1), (1, 2), (2, 6), (3, 6), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
            (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15))
HEAD = (8, 9)  # upper neck and head top: the head segment of PCKh
SIGMA = 1.5  # heatmap Gaussian, in heatmap cells
STRIDE = 4


@dataclass(frozen=True)
class PoseConfig:
    height: int = 128
    width: int = 128
    max_occluders: int = 2


def _rot(v: np.ndarray, a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def skeleton_points(rng: np.random.Generator) -> np.ndarray:
    """float [16, 2] joint positions of a random pose in body units (torso ~1)."""
    j = np.zeros((16, 2))
    lean = rng.normal(0, 0.25)
    up = _rot(np.array([0.0, -1.0]), lean)
    side = np.array([-up[1], up[0]])  # points to the figure's left in image terms
    width = rng.uniform(0.25, 0.45)
    j[6] = (0, 0)
    j[7] = j[6] + up * 1.0
    j[8] = j[7] + up * 0.22
    j[9] = j[8] + _rot(up, rng.normal(0, 0.3)) * rng.uniform(0.38, 0.48)
    j[12] = j[7] - side * width
    j[13] = j[7] + side * width
    j[2] = j[6] - side * width * 0.7
    j[3] = j[6] + side * width * 0.7
    for sh, el, wr, sgn in ((12, 11, 10, -1), (13, 14, 15, 1)):
        a = rng.uniform(-0.3, 2.8) * sgn
        j[el] = j[sh] + _rot(-up, a) * 0.55
        j[wr] = j[el] + _rot(-up, a + sgn * rng.uniform(0, 2.3)) * 0.5
    for hip, kn, an, sgn in ((2, 1, 0, -1), (3, 4, 5, 1)):
        a = rng.uniform(-0.4, 1.2) * sgn
        j[kn] = j[hip] + _rot(-up, a) * 0.75
        j[an] = j[kn] + _rot(-up, a - sgn * rng.uniform(0, 1.6)) * 0.7
    if rng.random() < 0.5:  # seen from behind: left and right swap places
        j[:, 0] *= -1
    return j


def capsule(img: np.ndarray, a: np.ndarray, b: np.ndarray, r: float, colour: np.ndarray) -> None:
    """Draws a filled capsule of radius r between points a and b (x, y)."""
    h, w = img.shape[:2]
    x0, x1 = int(max(min(a[0], b[0]) - r - 1, 0)), int(min(max(a[0], b[0]) + r + 2, w))
    y0, x1y = int(max(min(a[1], b[1]) - r - 1, 0)), int(min(max(a[1], b[1]) + r + 2, h))
    if x0 >= x1 or y0 >= x1y:
        return
    yy, xx = np.mgrid[y0:x1y, x0:x1].astype(np.float32)
    d = b - a
    ll = float(d @ d) or 1e-6
    t = np.clip(((xx - a[0]) * d[0] + (yy - a[1]) * d[1]) / ll, 0, 1)
    dist = np.hypot(xx - (a[0] + t * d[0]), yy - (a[1] + t * d[1]))
    cover = np.clip(r + 0.5 - dist, 0, 1)[..., None]
    img[y0:x1y, x0:x1] = cover * colour + (1 - cover) * img[y0:x1y, x0:x1]


def heatmaps(joints: np.ndarray, h: int, w: int, stride: int = STRIDE, sigma: float = SIGMA) -> np.ndarray:
    """float32 [16, h/stride, w/stride] Gaussians (peak 1) at the joints."""
    hh, ww = h // stride, w // stride
    u = (joints[:, 0] + 0.5) / stride - 0.5
    v = (joints[:, 1] + 0.5) / stride - 0.5
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    d2 = (xx[None] - u[:, None, None]) ** 2 + (yy[None] - v[:, None, None]) ** 2
    return np.exp(-d2 / (2 * sigma**2)).astype(np.float32)


@dataclass
class PoseSet(SplitSet):
    """Figures of one split; `sample(i)` is deterministic in (seed, split, i)."""

    cfg: PoseConfig = PoseConfig()

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 RGB [H, W, 3], float32 joints [16, 2] as (x, y))."""
        cfg = self.cfg
        rng = rng_for(self.seed, self.split, index, salt=7)
        img = background(rng, cfg.height, cfg.width)
        body = skeleton_points(rng)
        lo, hi = body.min(0), body.max(0)
        span = float(max(hi[0] - lo[0], hi[1] - lo[1]))
        size = rng.uniform(0.45, 0.85) * min(cfg.height, cfg.width)
        scale = size / span
        pts = (body - lo) * scale
        ext = pts.max(0)
        margin = 6
        ox = rng.uniform(margin, max(cfg.width - margin - ext[0], margin + 1))
        oy = rng.uniform(margin, max(cfg.height - margin - ext[1], margin + 1))
        joints = (pts + np.array([ox, oy])).astype(np.float32)
        limb_r = scale * rng.uniform(0.06, 0.1)
        shirt, trousers, skin = np.clip(rng.uniform(0, 1, 3), 0, 1), rng.uniform(0, 1, 3), rng.uniform(0.3, 1, 3)
        torso_r = scale * rng.uniform(0.14, 0.2)
        capsule(img, (joints[2] + joints[3]) / 2, joints[7], torso_r, shirt)
        for a, b in ((2, 1), (1, 0), (3, 4), (4, 5)):
            capsule(img, joints[a], joints[b], limb_r * 1.2, trousers)
        for a, b, c in ((12, 11, shirt), (11, 10, skin), (13, 14, shirt), (14, 15, skin)):
            capsule(img, joints[a], joints[b], limb_r, c)
        capsule(img, joints[7], joints[8], limb_r * 0.8, skin)
        head_c = joints[8] + 0.55 * (joints[9] - joints[8])
        capsule(img, head_c, head_c, 0.45 * float(np.linalg.norm(joints[9] - joints[8])), skin)
        assert self.items is not None
        for _ in range(rng.integers(0, cfg.max_occluders + 1)):
            k = int(rng.integers(0, len(self.items.labels)))
            s = int(round(28 * rng.uniform(1.0, 1.8)))
            grey = resize(self.items.images[k].astype(np.float32) / 255.0, s)
            paste(img, None, grey, 0, int(rng.integers(-s // 4, cfg.height - s // 2)),
                  int(rng.integers(-s // 4, cfg.width - s // 2)), rng.uniform(0.05, 0.95, 3), 0.4)
        img += rng.normal(0, 0.01, size=img.shape)
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), joints

    def batch(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.sample(i) for i in indices]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def refine(hm: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """Sub-pixel peak by a parabola through the arg-max and its two
    neighbours on each axis (offset clamped to half a cell); the Go decoder
    (package keypoints) does the same."""
    h, w = hm.shape
    dx = dy = 0.0
    if 0 < x < w - 1:
        l, c, r = float(hm[y, x - 1]), float(hm[y, x]), float(hm[y, x + 1])
        den = l - 2 * c + r
        if den < 0:
            dx = float(np.clip(0.5 * (l - r) / den, -0.5, 0.5))
    if 0 < y < h - 1:
        t, c, b = float(hm[y - 1, x]), float(hm[y, x]), float(hm[y + 1, x])
        den = t - 2 * c + b
        if den < 0:
            dy = float(np.clip(0.5 * (t - b) / den, -0.5, 0.5))
    return x + dx, y + dy


def decode(heat: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """float [J, 2] (x, y) input-pixel positions from heatmaps [J, h, w]."""
    out = np.zeros((heat.shape[0], 2), dtype=np.float64)
    for j, hm in enumerate(heat):
        hm = hm.astype(np.float32)
        i = int(np.argmax(hm))  # first maximum in row-major order
        u, v = refine(hm, i % hm.shape[1], i // hm.shape[1])
        out[j] = ((u + 0.5) * stride - 0.5, (v + 0.5) * stride - 0.5)
    return out


def pckh(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """bool [J]: joint j is correct when its error is at most alpha times the
    head segment (distance between the HEAD joints of the ground truth)."""
    head = float(np.linalg.norm(gt[HEAD[0]] - gt[HEAD[1]]))
    return np.linalg.norm(pred - gt, axis=1) <= alpha * head
