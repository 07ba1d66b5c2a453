// Microphone -> 16 kHz mono 16-bit PCM, posted to the page in 100 ms frames.
const RATE = 16000;
const FRAME = 1600;

class Pcm16k extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / RATE; // input samples per output sample
    this.phase = 0;
    this.sum = 0;
    this.count = 0;
    this.frame = new Int16Array(FRAME);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const length = channels[0].length;
    for (let i = 0; i < length; i++) {
      let x = 0;
      for (const channel of channels) x += channel[i];
      this.sum += x / channels.length;
      this.count += 1;
      this.phase += 1;
      if (this.phase >= this.step) { // box-filter decimation: the mean of the covered inputs
        this.phase -= this.step;
        const y = Math.max(-1, Math.min(1, this.sum / this.count));
        this.frame[this.filled++] = Math.round(y * 32767);
        this.sum = 0;
        this.count = 0;
        if (this.filled === FRAME) {
          this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
          this.frame = new Int16Array(FRAME);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm16k", Pcm16k);
