"""The offline synthetic corpus: espeak-ng voices and background noise written in GSC layout."""
