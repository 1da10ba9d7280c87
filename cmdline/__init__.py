"""What the product's command lines (pumpctl, pump-emu) share and is no
tool's own job: today, ending quietly when the reader of their output goes
away (cmdline.pipeout). It imports nothing of the product."""
