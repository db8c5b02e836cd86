"""Builtin weights: ``builtin:NAME`` resolves to ``NAME.pth`` in this folder.

A file is either our checkpoint format or a plain state dict (see ``ianet.checkpoints``);
floating weights may be stored as fp16 to halve the package size (cast to fp32 on load).
"""
