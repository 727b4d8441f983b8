"""The desktop face: PySide6 windows over the engine. Slow work runs on QThread workers."""
