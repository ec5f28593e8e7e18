"""The bipolar neuron (``BIFNeuron``, ``BIFCount``): numpy references and the lowering of quantized activations."""
