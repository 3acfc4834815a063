//! The mel filterbank whisper.cpp reads from the model file.

/// librosa's `filters.mel(sr=16000, n_fft=400, n_mels)`: Slaney mel scale and norm, `n_mels`
/// rows of 201 FFT bins, row-major.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    let (sr, n_fft) = (16000.0f64, 400usize);
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    let hz_to_mel = |f: f64| {
        if f >= min_log_hz {
            min_log_mel + (f / min_log_hz).ln() / logstep
        } else {
            f / f_sp
        }
    };
    let mel_to_hz = |m: f64| {
        if m >= min_log_mel {
            min_log_hz * (logstep * (m - min_log_mel)).exp()
        } else {
            f_sp * m
        }
    };
    let bins = n_fft / 2 + 1;
    let fft: Vec<f64> = (0..bins).map(|k| k as f64 * sr / n_fft as f64).collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = Vec::with_capacity(n_mels * bins);
    for i in 0..n_mels {
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for f in &fft {
            let lower = (f - mel_f[i]) / (mel_f[i + 1] - mel_f[i]);
            let upper = (mel_f[i + 2] - f) / (mel_f[i + 2] - mel_f[i + 1]);
            out.push((lower.min(upper).max(0.0) * enorm) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_filters_match_librosa() {
        // Values from openai-whisper's `assets/mel_filters.npz` (`mel_80`), which is
        // librosa.filters.mel(sr=16000, n_fft=400, n_mels=80).
        let f = mel_filters(80);
        assert_eq!(f.len(), 80 * 201);
        assert!((f[1] - 0.024_862_595).abs() < 1e-7, "{}", f[1]);
        assert!((f[79 * 201 + 190] - 0.002_232_055).abs() < 1e-7);
        assert_eq!(f[2], 0.0);
        let total: f64 = f.iter().map(|v| *v as f64).sum();
        assert!((total - 1.999_024_092).abs() < 1e-5, "{total}");
    }
}
