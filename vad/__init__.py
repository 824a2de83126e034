"""Voice activity detection: audio -> speech regions -> segments of at most max_segment_s.

Modules, in the order the audio flows through them:

- ``frames``: webrtcvad frame classification, streamed block by block, plus per-frame energy.
- ``backends``: the classifier behind ``vad.backend`` (webrtc, silero, fsmn), one contract for all.
- ``gates``: energy gates that veto steady noise and far-too-quiet frames.
- ``edges``: speech grows into the soft sound at its ends that webrtcvad does not hear.
- ``segmenter``: the TRIGGERED/NOTTRIGGERED state machine with onset/offset hysteresis, and padding.
- ``split``: the length cap (cut at the longest pause) and optional merging.
- ``stage``: the stage itself: decode -> PCM cache -> segments, in worker processes, resumable.
- ``check``: what preflight collects: the fsmn model folder, and the extra silero needs.

Generated meetings with exactly known speech, and the scoring against labels, live with the tests
(``tests/support``).
"""
