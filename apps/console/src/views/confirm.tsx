import { useEffect, useRef, useState } from "preact/hooks";

export interface ConfirmProps {
  readonly title: string;
  readonly children: preact.ComponentChildren;
  readonly confirmLabel: string;
  /** When set, the operator must type this exactly before the button enables (the kill switch). */
  readonly typeToConfirm?: string;
  readonly onConfirm: () => void | Promise<void>;
  readonly onClose: () => void;
}

/** A modal confirmation (native <dialog>: focus stays inside, Escape cancels). */
export const Confirm = ({
  title,
  children,
  confirmLabel,
  typeToConfirm,
  onConfirm,
  onClose,
}: ConfirmProps) => {
  const ref = useRef<HTMLDialogElement>(null);
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const dialog = ref.current!;
    dialog.showModal();
    const cancel = () => onClose();
    dialog.addEventListener("cancel", cancel);
    return () => dialog.removeEventListener("cancel", cancel);
  }, []);
  const ready = !typeToConfirm || typed === typeToConfirm;
  return (
    <dialog ref={ref} class="confirm" aria-labelledby="confirm-title">
      <h2 id="confirm-title">{title}</h2>
      <div>{children}</div>
      {typeToConfirm && (
        <label>
          <span>
            Type <code>{typeToConfirm}</code> to confirm
          </span>
          <input
            value={typed}
            onInput={(e) => setTyped((e.target as HTMLInputElement).value)}
            autocomplete="off"
          />
        </label>
      )}
      <div class="actions">
        <button type="button" class="quiet" onClick={onClose}>
          Cancel
        </button>
        <button
          type="button"
          class="danger"
          disabled={!ready || busy}
          onClick={async () => {
            setBusy(true);
            try {
              await onConfirm();
            } finally {
              setBusy(false);
              onClose();
            }
          }}
        >
          {confirmLabel}
        </button>
      </div>
    </dialog>
  );
};
