"""The speedup chart of the benchmark plots (`plot_sparse`):
a PNG (python3-pil) with a framed plot area, x from 0 to 1 (the fraction of
a stage computed), y from 0 to `ymax` (a speedup) and one labelled curve of
points per stage, legend on the right."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

COLORS = [(200, 30, 30), (30, 90, 200), (30, 160, 60), (200, 140, 0), (140, 60, 180), (0, 150, 150)]


class SpeedupChart:
    """A white canvas of `size` (width, height) with the plot area inside
    `margins` (left, right, top, bottom) framed in black."""

    def __init__(self, size: tuple[int, int], margins: tuple[int, int, int, int], ymax: float) -> None:
        self.W, self.H = size
        self.L, self.R, self.T, self.B = margins
        self.ymax = ymax
        self.img = Image.new("RGB", size, "white")
        self.draw = ImageDraw.Draw(self.img)
        self.draw.rectangle([self.L, self.T, self.W - self.R, self.H - self.B], outline="black")

    def xy(self, a: float, v: float) -> tuple[float, float]:
        """The canvas point of fraction a and speedup v."""
        return (self.L + (self.W - self.L - self.R) * a,
                self.H - self.B - (self.H - self.T - self.B) * v / self.ymax)

    def x_ticks(self, n: int) -> None:
        """Ticks and labels at 0, 1/n, …, 1."""
        for i in range(n + 1):
            x, _ = self.xy(i / n, 0)
            self.draw.line([x, self.H - self.B, x, self.H - self.B + 4], fill="black")
            self.draw.text((x - 8, self.H - self.B + 8), f"{i / n:.1f}", fill="black")

    def y_tick(self, v: float, label: str) -> None:
        """A tick at speedup v, its label right-aligned left of the axis."""
        _, y = self.xy(0, v)
        self.draw.line([self.L - 4, y, self.L, y], fill="black")
        self.draw.text((self.L - 8 - self.draw.textlength(label), y - 6), label, fill="black")

    def level(self, v: float, colour: tuple[int, int, int], label: str = "") -> None:
        """A horizontal line across the plot at speedup v, with its label (if
        any) above its left end."""
        x0, y = self.xy(0, v)
        x1, _ = self.xy(1, v)
        self.draw.line([x0, y, x1, y], fill=colour)
        if label:
            self.draw.text((x0 + 4, y - 14), label, fill=colour)

    def titles(self, title: str, x_label: str) -> None:
        """The title above the plot and the x axis's label below it."""
        self.draw.text((self.L, 8), title, fill="black")
        self.draw.text((self.L + (self.W - self.L - self.R) // 2 - 80, self.H - 22), x_label, fill="black")

    def curves(self, curves: dict[str, list[tuple[float, float]]]) -> None:
        """One coloured polyline with dots per (fraction, speedup) list, in
        the order given, each with its legend entry."""
        for i, (label, pts) in enumerate(curves.items()):
            colour = COLORS[i % len(COLORS)]
            xs = [self.xy(a, v) for a, v in pts]
            self.draw.line(xs, fill=colour, width=2)
            for x, y in xs:
                self.draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
            y = self.T + 10 + 18 * i
            self.draw.line([self.W - self.R + 12, y, self.W - self.R + 36, y], fill=colour, width=3)
            self.draw.text((self.W - self.R + 42, y - 6), label, fill="black")

    def note(self, line: int, text: str) -> None:
        """Line `line` of a note under the legend."""
        self.draw.text((self.W - self.R + 12, self.T + 120 + 16 * line), text, fill="black")

    def save(self, out: Path) -> None:
        self.img.save(out)
