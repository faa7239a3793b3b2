"""Audio adapter: load/resample/mix down (io), crops and padding (crops), MFCC/log-mel (features), batching (collators),
room acoustics (room) and CPC's channel views (channel_augment).

Audio folders without torchcodec: folder.load_audio_folder. See docs/audio.md.
"""
