//! packhost for Python (placeholder).
