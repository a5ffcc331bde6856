"""Checkpoint files: tensors in safetensors plus a plain-JSON config, written atomically
(``files``), and the schema every loaded config is checked against before use (``meta``).

Loading never runs code from the file. Rebuilding a network from a checkpoint is the policy's
business (``policy/pretrained.py``).
"""
