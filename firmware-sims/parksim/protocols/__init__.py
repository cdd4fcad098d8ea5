"""Protocol servers of the simulated park, over their own register tables and address space."""
