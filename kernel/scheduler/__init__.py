"""The scheduler half of the kernel: MLFQ lanes, provider gate, zombie reaping."""
