"""DCGAN (Radford, Metz & Chintala, 2015) for MindSpore."""
