"""Training fast on a plain CPU: process set-up before MindSpore loads (device.py), the drop-in layers that route
convolutions and activations through the project's own oneDNN kernels (fast_layers.py), and those kernels' sources,
build and loading (kernels/). On GPU and Ascend the layers are MindSpore's own and nothing here is compiled."""
