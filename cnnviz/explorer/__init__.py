"""The network explorer: one number of a trained network, followed through its real arithmetic."""
