//! packhost for Ruby (placeholder).
