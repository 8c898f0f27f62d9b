"""The networks of the thesis: Keras 3 Functional generators and critics built by block helpers."""
