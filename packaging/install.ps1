<#
.SYNOPSIS
Installs tlschat-server.exe, tlschat.exe and the desktop client
tlschat-gui.exe (Windows) from a GitHub release, with a Start menu entry
"tlschat" for the desktop client.

.DESCRIPTION
Downloads the release's SHA256SUMS and the .zip for this CPU (x64 or ARM64),
refuses to install anything unless the archive's SHA-256 matches, then copies
the programs into %LOCALAPPDATA%\Programs\tlschat\bin (or PREFIX\bin) and puts
a shortcut to tlschat-gui.exe into your Start menu.
Each parameter can also come from an environment variable, for the one-line
form that cannot pass parameters:

  powershell -ExecutionPolicy Bypass -c "irm https://github.com/tlschat/tlschat/releases/latest/download/install.ps1 | iex"

.PARAMETER Version
A release such as 0.1.0 instead of the latest (TLSCHAT_VERSION).
.PARAMETER Prefix
Install into PREFIX\bin (TLSCHAT_PREFIX).
.PARAMETER Repo
Another GitHub repository, OWNER/NAME (TLSCHAT_REPO).
.PARAMETER BaseUrl
A mirror laid out like URL/latest/download/FILE and URL/download/vX.Y.Z/FILE;
default https://github.com/OWNER/NAME/releases (TLSCHAT_BASE_URL).
.PARAMETER Target
Another build, e.g. x86_64-pc-windows-msvc (TLSCHAT_TARGET).
.PARAMETER AddToPath
Also add the install directory to your user PATH.

.EXAMPLE
& ([scriptblock]::Create((irm https://github.com/tlschat/tlschat/releases/latest/download/install.ps1))) -Version 0.1.0 -AddToPath
#>
param(
    [string]$Version = $(if ($env:TLSCHAT_VERSION) { $env:TLSCHAT_VERSION } else { 'latest' }),
    [string]$Prefix = $env:TLSCHAT_PREFIX,
    [string]$Repo = $(if ($env:TLSCHAT_REPO) { $env:TLSCHAT_REPO } else { 'tlschat/tlschat' }),
    [string]$BaseUrl = $env:TLSCHAT_BASE_URL,
    [string]$Target = $env:TLSCHAT_TARGET,
    [switch]$AddToPath
)

# Everything runs inside a function, so that `irm ... | iex` leaves no strict
# mode, preference or variable behind in the caller's session.
function Install-Tlschat {
    Set-StrictMode -Version 2.0
    $ErrorActionPreference = 'Stop'
    $ProgressPreference = 'SilentlyContinue'
    # Windows PowerShell 5.1 may default to TLS 1.0; GitHub needs 1.2.
    if ($PSVersionTable.PSVersion.Major -lt 6) {
        [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
    }

    function Get-TlschatTarget {
        $arch = $null
        try {
            $arch = [System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture.ToString()
        } catch {
            $arch = $null
        }
        if (-not $arch) {
            $arch = $env:PROCESSOR_ARCHITECTURE
            if ($env:PROCESSOR_ARCHITEW6432) { $arch = $env:PROCESSOR_ARCHITEW6432 }
        }
        switch -Regex ($arch) {
            '^(X64|AMD64)$' { return 'x86_64-pc-windows-msvc' }
            '^(Arm64|ARM64)$' { return 'aarch64-pc-windows-msvc' }
            default { throw "install.ps1: no Windows build for CPU architecture '$arch'" }
        }
    }

    if ($Repo -notmatch '^[^/\s]+/[^/\s]+$') { throw "install.ps1: -Repo wants OWNER/NAME, not '$Repo'" }
    if (-not $Target) { $Target = Get-TlschatTarget }
    if (-not $BaseUrl) { $BaseUrl = "https://github.com/$Repo/releases" }
    $BaseUrl = $BaseUrl.TrimEnd('/')
    if ($Version -eq 'latest') {
        $releaseUrl = "$BaseUrl/latest/download"
    } else {
        $Version = $Version.TrimStart('v')
        $releaseUrl = "$BaseUrl/download/v$Version"
    }
    if ($Prefix) {
        $dest = Join-Path $Prefix 'bin'
    } else {
        $dest = Join-Path $env:LOCALAPPDATA 'Programs\tlschat\bin'
    }

    $tmp = Join-Path ([System.IO.Path]::GetTempPath()) ("tlschat-install-" + [System.Guid]::NewGuid().ToString('N'))
    New-Item -ItemType Directory -Path $tmp | Out-Null
    try {
        $sumsFile = Join-Path $tmp 'SHA256SUMS'
        Write-Host "install.ps1: downloading $releaseUrl/SHA256SUMS"
        try {
            Invoke-WebRequest -UseBasicParsing -Uri "$releaseUrl/SHA256SUMS" -OutFile $sumsFile
        } catch {
            throw "install.ps1: cannot download $releaseUrl/SHA256SUMS (is there such a release?): $_"
        }

        # Lines are "HASH  NAME" (or "HASH *NAME").
        $sums = @{}
        foreach ($line in Get-Content -LiteralPath $sumsFile) {
            if ($line -match '^([0-9a-fA-F]{64})\s+\*?(\S+)\s*$') {
                $sums[$Matches[2]] = $Matches[1].ToLowerInvariant()
            }
        }
        if ($Version -eq 'latest') {
            $asset = $sums.Keys | Where-Object { $_ -like "tlschat-*-$Target.zip" } | Select-Object -First 1
            if (-not $asset) { throw "install.ps1: the latest release has no archive for $Target" }
        } else {
            $asset = "tlschat-$Version-$Target.zip"
        }
        if (-not $sums.ContainsKey($asset)) { throw "install.ps1: $asset is not listed in SHA256SUMS of $releaseUrl" }

        $zip = Join-Path $tmp $asset
        Write-Host "install.ps1: downloading $releaseUrl/$asset"
        Invoke-WebRequest -UseBasicParsing -Uri "$releaseUrl/$asset" -OutFile $zip
        $actual = (Get-FileHash -Algorithm SHA256 -LiteralPath $zip).Hash.ToLowerInvariant()
        if ($actual -ne $sums[$asset]) {
            throw ("install.ps1: checksum mismatch for $asset`n  expected $($sums[$asset]) (SHA256SUMS)`n  got      $actual`n" +
                "refusing to install: the download is corrupt or has been tampered with")
        }
        Write-Host "install.ps1: checksum OK ($actual)"

        $unpacked = Join-Path $tmp 'x'
        Expand-Archive -LiteralPath $zip -DestinationPath $unpacked
        $binaries = @('tlschat-server.exe', 'tlschat.exe')
        $found = @{}
        foreach ($bin in $binaries) {
            $file = Get-ChildItem -LiteralPath $unpacked -Recurse -File -Filter $bin | Select-Object -First 1
            if (-not $file) { throw "install.ps1: $asset holds no $bin" }
            $found[$bin] = $file.FullName
        }
        # The desktop client, in the archives of the targets it is built for.
        $gui = Get-ChildItem -LiteralPath $unpacked -Recurse -File -Filter 'tlschat-gui.exe' | Select-Object -First 1
        if ($gui) {
            $binaries += 'tlschat-gui.exe'
            $found['tlschat-gui.exe'] = $gui.FullName
        }

        New-Item -ItemType Directory -Force -Path $dest | Out-Null
        foreach ($bin in $binaries) {
            Copy-Item -LiteralPath $found[$bin] -Destination (Join-Path $dest $bin) -Force
        }
        Write-Host "install.ps1: installed into ${dest}:"
        & (Join-Path $dest 'tlschat-server.exe') --version
        & (Join-Path $dest 'tlschat.exe') --version
        if ($gui) {
            # Your Start menu (no administrator rights needed); the MSI makes
            # the same entry for every user.
            $shortcut = Join-Path ([Environment]::GetFolderPath('Programs')) 'tlschat.lnk'
            $shell = New-Object -ComObject WScript.Shell
            $link = $shell.CreateShortcut($shortcut)
            $link.TargetPath = Join-Path $dest 'tlschat-gui.exe'
            $link.WorkingDirectory = $dest
            $link.Description = 'tlschat: private group chat over TLS'
            $link.Save()
            Write-Host "install.ps1: the desktop client is $(Join-Path $dest 'tlschat-gui.exe'), in the Start menu as tlschat ($shortcut)"
        }

        $norm = { param($p) if ($p) { $p.TrimEnd('\').ToLowerInvariant() } }
        $userPath = [Environment]::GetEnvironmentVariable('Path', 'User')
        $onPath = @(($env:Path -split ';') + ($userPath -split ';')) |
            Where-Object { (& $norm $_) -eq (& $norm $dest) }
        if (-not $onPath) {
            if ($AddToPath) {
                $newPath = if ($userPath) { "$dest;$userPath" } else { $dest }
                [Environment]::SetEnvironmentVariable('Path', $newPath, 'User')
                $env:Path = "$dest;$env:Path"
                Write-Host "install.ps1: added $dest to your user PATH (new terminals see it)"
            } else {
                Write-Host "install.ps1: note: $dest is not on your PATH. Add it with:"
                Write-Host "  [Environment]::SetEnvironmentVariable('Path', '$dest;' + [Environment]::GetEnvironmentVariable('Path', 'User'), 'User')"
                Write-Host "or run this installer again with -AddToPath."
            }
        }
    } finally {
        Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue
    }
}

Install-Tlschat
