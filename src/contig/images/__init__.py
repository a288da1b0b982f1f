"""Image stage: manifest validation, fundus-field crop, resize, the uint8 cache (rules/images.smk)."""
