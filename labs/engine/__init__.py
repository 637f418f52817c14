"""The lab engine: runs any lab's experiment on a topology and judges it. Knows no lab."""
