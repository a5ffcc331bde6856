"""A trained policy outside this process: a policy server and its client over websockets
(``server``, ``client``, ``wire``) and an exported ONNX graph (``onnx_export``)."""
