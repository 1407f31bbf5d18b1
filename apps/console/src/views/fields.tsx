/** A text input bound to a string: `onValue` gets what was typed (trimmed when `trim` is set). */
export const TextField = ({
  label,
  value,
  onValue,
  placeholder,
  trim = false,
}: {
  label: string;
  value: string;
  onValue: (value: string) => void;
  placeholder?: string;
  trim?: boolean;
}) => (
  <input
    placeholder={placeholder ?? label}
    aria-label={label}
    value={value}
    onInput={(e) => {
      const typed = (e.target as HTMLInputElement).value;
      onValue(trim ? typed.trim() : typed);
    }}
  />
);
