"""The node agent: headroom GC ahead of the kubelet, warm images, metrics, events."""
