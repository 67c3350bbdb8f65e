// Sounds made in the browser (WebAudio): the offer's alarm and the CPR metronome.
// Pages count what they played in <body data-beeps / data-ticks> so it can be checked.

let ctx = null;

/** The shared AudioContext (browsers unlock it on a user gesture: call this from one). */
export function audio() {
  ctx ??= new AudioContext();
  if (ctx.state === "suspended") ctx.resume();
  return ctx;
}

function tone(at, freq, seconds, gain = 0.3) {
  const a = audio();
  const osc = a.createOscillator();
  const vol = a.createGain();
  osc.frequency.value = freq;
  vol.gain.setValueAtTime(gain, at);
  vol.gain.exponentialRampToValueAtTime(0.001, at + seconds);
  osc.connect(vol).connect(a.destination);
  osc.start(at);
  osc.stop(at + seconds);
}

function count(key) {
  document.body.dataset[key] = String(Number(document.body.dataset[key] || 0) + 1);
}

/** Three short high beeps: an offer arrived. */
export function alarm() {
  const a = audio();
  for (let i = 0; i < 3; i++) tone(a.currentTime + i * 0.25, 1320, 0.18);
  count("beeps");
}

/** A metronome at `perMinute` beats: a click scheduled ahead on the audio clock, and onBeat()
 * called on each beat for the visible pulse. */
export class Metronome {
  constructor(onBeat) {
    this.onBeat = onBeat;
    this.timer = null;
    this.perMinute = 110;
  }

  get running() {
    return this.timer !== null;
  }

  start(perMinute = this.perMinute) {
    this.stop();
    this.perMinute = perMinute;
    const a = audio();
    const beat = 60 / this.perMinute;
    const pulse = () => {
      count("ticks");
      this.onBeat?.();
    };
    if (a.state !== "running") {
      // Sound is blocked until the user touches the page: keep the visible beat going.
      this.timer = setInterval(pulse, beat * 1000);
      return;
    }
    let next = a.currentTime + 0.05;
    this.timer = setInterval(() => {
      while (next < a.currentTime + 0.1) {
        tone(next, 1000, 0.05, 0.5);
        setTimeout(pulse, Math.max(0, (next - a.currentTime) * 1000));
        next += beat;
      }
    }, 25);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
