"""The recovery kit: what a new computer needs, besides the password, to find the vault's
stores and tell them from impostors (FORMAT.md section 11)."""
