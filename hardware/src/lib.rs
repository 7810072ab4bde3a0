//! ESC/POS printers and serial scales (built in the Hardware issue).
