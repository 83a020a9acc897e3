"""Storage providers behind one small async interface, one module per provider."""
