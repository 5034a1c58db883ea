"""The network: branch lists, layers, the BranchyNet controller, exit rules and measures, saving."""
