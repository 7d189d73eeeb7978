"""The avatar session of a call: channels in, frames through the pipeline, out to the room."""
