"""The built-in stages, registered through the ``ianet_stream.stages`` entry points."""
