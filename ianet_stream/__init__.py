"""ianet-stream: pipelines of composable stages for video salient-object detection."""

__version__ = "0.1.0"
