"""Data files: identity-term lexicons (identity_<language>.yaml); see docs/toxicity.md to extend them."""
