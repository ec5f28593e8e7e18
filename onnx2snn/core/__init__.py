"""Graph-editing toolkit with no spiking knowledge: import/export, names, shapes, builders."""
