"""Segmentation models (Flax NNX)."""
from jaxmag.models.unet import PAPER_PARAMETER_COUNT, UNet, count_parameters

__all__ = ["PAPER_PARAMETER_COUNT", "UNet", "count_parameters"]
