/** "42 s", "3 min", "2 h 5 min". */
export const duration = (ms: number): string => {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172_800) {
    const minutes = Math.round(s / 60);
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }
  return `${Math.round(s / 86_400)} d`;
};

export const shortId = (id: string | null | undefined): string =>
  id ? `${id.slice(0, 3)}…${id.slice(-6)}` : "-";
