/**
 * Masks credentials in text before it is logged or shown: perishable tokens (keeping the
 * non-secret tree part), and the common shapes of provider keys.
 */
const PATTERNS: ReadonlyArray<readonly [RegExp, (match: string) => string]> = [
  [/\bprs_([0-9a-z]{10})_[A-Za-z0-9_-]{8,}/g, (m) => `${m.slice(0, 15)}[redacted]`],
  [/\bprs_[A-Za-z0-9_-]{8,}/g, () => "prs_[redacted]"],
  [/\bsk-ant-[A-Za-z0-9_-]{8,}/g, () => "sk-ant-[redacted]"],
  [/\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}/g, () => "sk-[redacted]"],
  [/\b(?:pik|pak|sec)_[A-Za-z0-9_-]{16,}/g, (m) => `${m.slice(0, 4)}[redacted]`],
  [/\bAIza[0-9A-Za-z_-]{30,}/g, () => "AIza[redacted]"],
  [/\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}/g, () => "gh_[redacted]"],
  [/\bxox[abpsr]-[A-Za-z0-9-]{10,}/g, () => "xox-[redacted]"],
  [/\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, () => "AKIA[redacted]"],
  [/\bBearer\s+[A-Za-z0-9._~+/=-]{16,}/gi, () => "Bearer [redacted]"],
];

export const redact = (text: string): string => {
  let out = text;
  for (const [pattern, replace] of PATTERNS) out = out.replace(pattern, replace);
  return out;
};
