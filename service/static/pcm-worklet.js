// Collects the microphone's samples (the first channel) into ~100 ms Float32 chunks for the page.
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.round(sampleRate / 10);
    this.chunk = new Float32Array(this.size);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0][0];
    if (channel) {
      let offset = 0;
      while (offset < channel.length) {
        const taken = Math.min(channel.length - offset, this.size - this.filled);
        this.chunk.set(channel.subarray(offset, offset + taken), this.filled);
        this.filled += taken;
        offset += taken;
        if (this.filled === this.size) {
          this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);  // transferred: the chunk is now empty
          this.chunk = new Float32Array(this.size);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
