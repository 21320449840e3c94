//! Example programs live in `examples/examples/`.
