"""The temporal-separation neuron (``TSNeuron``): numpy reference, exactness checks, portable form, q_T ANN."""
