"""The IF neuron (``IFNeuron``): numpy reference, its step in standard ops, streaming and portable forms."""
