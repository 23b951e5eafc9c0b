"""Short names of released SAM-family and Grounding DINO checkpoints (no heavy imports)."""

#: Short names for the released checkpoints (hub ids); any other hub id or directory works too.
HUB_MODELS: dict[str, str] = {
    "sam2.1-tiny": "facebook/sam2.1-hiera-tiny",
    "sam2.1-small": "facebook/sam2.1-hiera-small",
    "sam2.1-base-plus": "facebook/sam2.1-hiera-base-plus",
    "sam2.1-large": "facebook/sam2.1-hiera-large",
    "edgetam": "facebook/EdgeTAM",
    "sam3": "facebook/sam3",
    "sam-vit-base": "facebook/sam-vit-base",
    "grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny",
}
DEFAULT_VIDEO_MODEL = "sam2.1-tiny"
DEFAULT_DETECTOR = "grounding-dino-tiny"
