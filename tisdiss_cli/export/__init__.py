"""The model at one depth as an ONNX graph (:mod:`.onnx`), above the zoo and the separation layer."""
