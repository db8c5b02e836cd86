"""Optical flow: estimators and the colour coding IANet's flow stream reads."""

from ianet.flow.colour import flow_to_image

__all__ = ["flow_to_image"]
