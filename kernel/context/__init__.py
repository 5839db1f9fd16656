"""The context half of the kernel: hot / warm / cold tiers, hibernate and recall."""
