"""A procedural text-to-image world: 32x32 RGB images of simple shapes with their captions, from a seed, no download.

Every sample is drawn from a ``numpy`` generator seeded by ``(seed, index)``, so sample ``i`` of a seed is the same
whatever else is drawn. Pure numpy/PIL; thousands of samples per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ldmpick.files.errors import UsageError

IMAGE_SIZE = 32
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 215, 40),
    "purple": (150, 50, 190),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SIZES: dict[str, float] = {"small": 0.18, "large": 0.34}  # half-extent as a fraction of the image side
POSITIONS: dict[str, tuple[float, float]] = {  # centre (x, y) as fractions of the image side
    "top left": (0.3, 0.3), "top right": (0.7, 0.3), "center": (0.5, 0.5),
    "bottom left": (0.3, 0.7), "bottom right": (0.7, 0.7),
}


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    size: str
    position: str
    background: str

    def caption(self) -> str:
        where = "in the center" if self.position == "center" else f"at the {self.position}"
        return f"a {self.size} {self.colour} {self.shape} {where} on a {self.background} background"


def vocabulary() -> list[str]:
    """Every word a caption can use, sorted."""
    words = {"a", "at", "the", "in", "on", "background"}
    for group in (SHAPES, COLOURS, SIZES, POSITIONS):
        for item in group:
            words.update(item.split())
    return sorted(words)


def sample_scene(seed: int, index: int) -> Scene:
    import numpy as np

    if seed < 0 or index < 0:
        raise UsageError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    rng = np.random.default_rng([seed, index])
    colour = str(rng.choice(list(COLOURS)))
    background = str(rng.choice([c for c in COLOURS if c != colour]))
    return Scene(shape=str(rng.choice(SHAPES)), colour=colour, size=str(rng.choice(list(SIZES))),
                 position=str(rng.choice(list(POSITIONS))), background=background)


def render(scene: Scene, size: int = IMAGE_SIZE):  # -> numpy uint8 array (size, size, 3)
    """Draw a scene: the shape, anti-aliased by 4x supersampling."""
    import numpy as np
    from PIL import Image, ImageDraw

    for value, table, what in ((scene.shape, SHAPES, "shape"), (scene.colour, COLOURS, "colour"),
                               (scene.size, SIZES, "size"), (scene.position, POSITIONS, "position"),
                               (scene.background, COLOURS, "background")):
        if value not in table:
            raise UsageError(f"unknown {what} {value!r}; known: {', '.join(table)}")
    if size < 8:
        raise UsageError(f"image size must be at least 8 px, got {size}")
    big = size * 4
    img = Image.new("RGB", (big, big), COLOURS[scene.background])
    draw = ImageDraw.Draw(img)
    cx, cy = (f * big for f in POSITIONS[scene.position])
    r = SIZES[scene.size] * big
    fill = COLOURS[scene.colour]
    if scene.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif scene.shape == "square":
        s = r * 0.85
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif scene.shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill)
    elif scene.shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    else:  # cross
        w = r * 0.35
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    return np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.uint8)


def sample(seed: int, index: int, size: int = IMAGE_SIZE) -> tuple[Any, str, Scene]:
    """``(image, caption, scene)`` for sample ``index`` of world ``seed``."""
    scene = sample_scene(seed, index)
    return render(scene, size), scene.caption(), scene


def dataset(seed: int, n: int, size: int = IMAGE_SIZE) -> tuple[Any, list[str], list[Scene]]:
    """``n`` samples as a uint8 array ``(n, size, size, 3)``, their captions and scenes."""
    import numpy as np

    if n < 1:
        raise UsageError(f"the number of samples must be at least 1, got {n}")
    scenes = [sample_scene(seed, i) for i in range(n)]
    images = np.stack([render(s, size) for s in scenes])
    return images, [s.caption() for s in scenes], scenes
