"""What a built image is called and what it says about itself, for every engine alike.

The names come from the content digest alone: the local tag, the parent an engine builds
FROM, the registry content tag and the labels stamped into the image. Engines only lower;
they import these instead of deciding names of their own.
"""

from __future__ import annotations

from nbpipe.recipe import contract
from nbpipe.recipe.image import BaseRef, Image, short
from nbpipe.recipe.ops import SetLabel
from nbpipe.recipe.options import BuildOptions

LOCAL_REPO = "localhost/nbpipe"


def content_tag(image: Image) -> str:
    """The registry tag of an image's content: ``sha-`` + 16 hex of its digest over every
    platform (one manifest list per recipe, so the tag moves only when the recipe does)."""
    return f"sha-{short(image.digest(), 16)}"


def local_ref(image: Image, platform: str) -> str:
    """The local tag of a built image: its name and per-platform content digest."""
    return f"{LOCAL_REPO}/{image.name or 'custom'}:{short(image.digest(platform), 16)}"


def parent_ref(image: Image, platform: str) -> str:
    """What ``image`` is built FROM: its parent's local tag, or the pinned root."""
    parent = image.parent
    return parent.pinned(platform) if isinstance(parent, BaseRef) else local_ref(parent, platform)


def stamp(
    image: Image, platform: str, options: BuildOptions = BuildOptions()
) -> tuple[SetLabel, ...]:
    """Labels every engine adds so a built image says what it is (and how it was built).
    A team image (``options.origins``) names its own source, revision and parent, not
    the ones it inherits from our base image."""
    own = [p for p in options.origins if p.name == image.name]
    return (
        SetLabel(contract.LABEL_NAME, image.name or "custom"),
        SetLabel(contract.LABEL_DIGEST, image.digest(platform)),
        SetLabel("org.opencontainers.image.version", content_tag(image)),
        *(SetLabel(k, v) for k, v in options.labels),
        *(
            op
            for p in own
            for op in (
                SetLabel("org.opencontainers.image.source", p.source),
                SetLabel("org.opencontainers.image.revision", p.revision),
                SetLabel("org.opencontainers.image.base.name", parent_ref(image, platform)),
            )
        ),
    )
