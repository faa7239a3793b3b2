"""espeak-ng voices and words of the spoken corpora: plain data (the CLI's help lists them without numpy or torch)."""

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# espeak-ng's own English accents (no MBROLA voices needed).
ALL_ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
ALL_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
# The copy shipped in multissl/data/assets/spoken_digits: 24 speakers x 10 digits x 2 repeats (~4 MB of FLAC).
SHIPPED_ACCENTS = ("en", "en-us", "en-gb-scotland", "en-029")
SHIPPED_VARIANTS = ("m1", "m3", "m7", "f1", "f2", "f4")

# spoken_words (multissl/data/spoken_words.py): the ten digits plus 20 short command words of Speech Commands
# (Warden, 2018), spoken by 8 accents x 6 voice variants = 48 speakers.
COMMAND_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
                 "bed", "bird", "cat", "dog", "house", "tree", "wow", "happy", "learn", "follow")
SPOKEN_WORDS = DIGITS + COMMAND_WORDS
SPOKEN_WORDS_ACCENTS = ALL_ACCENTS
SPOKEN_WORDS_VARIANTS = ("m1", "m2", "m3", "m7", "f1", "f4")
